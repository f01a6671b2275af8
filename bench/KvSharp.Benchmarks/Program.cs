using BenchmarkDotNet.Running;

// Kernel micro-benchmarks. Examples:
//   dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*VecDot*'
//   dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*' --job short
// End-to-end numbers (tokens/s, the KV cache against recomputation) come from `kvsharp bench`, not from here.
// In-process alternation of the one-token variants (ratios on a shared machine): see OneTokenAlternation.
if (args.Length > 0 && args[0] == "alternate")
{
    KvSharp.Benchmarks.OneTokenAlternation.Run(args);
    return;
}
if (args.Length > 0 && args[0] == "profile-step")
{
    KvSharp.Benchmarks.BatchedStepProfile.Run(args);
    return;
}
if (args.Length > 0 && args[0] == "alternate-kv")
{
    KvSharp.Benchmarks.KvPageAlternation.Run(args);
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
