using BenchmarkDotNet.Running;

// Kernel micro-benchmarks. Examples:
//   dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*VecDot*'
//   dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*' --job short
// End-to-end numbers (tokens/s, the KV cache against recomputation) come from `kvsharp bench`, not from here.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
