using BenchmarkDotNet.Running;

// Kernel micro-benchmarks. Examples:
//   dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*VecDot*'
//   dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*' --job short
// End-to-end numbers (tokens/s, the KV cache against recomputation) come from `kvsharp bench`, not from here.
// In-process drivers (ratios from interleaved rounds, for a shared machine) take the first argument; the rest is BenchmarkDotNet.
switch (args.Length > 0 ? args[0] : null)
{
    case "alternate": KvSharp.Benchmarks.OneTokenAlternation.Run(args); return; // one-token kernel variants
    case "paged-attention": KvSharp.Benchmarks.PagedAttentionProbe.Run(args); return; // decode attention alone over paged KV, cold or hot
    case "profile-step": KvSharp.Benchmarks.BatchedStepProfile.Run(args); return; // where a batched decode step's time goes
    case "decode-attention": KvSharp.Benchmarks.DecodeAttentionAlternation.Run(args); return; // decode attention at depth, contiguous rows
    case "four-tokens": KvSharp.Benchmarks.FourTokenAlternation.Run(args); return; // four-token kernels against the single-token one
    case "kivi-codes": KvSharp.Benchmarks.KiviCodesAlternation.Run(args); return; // KIVI codes to floats, 16 against 8 at a time
    case "interleaved": KvSharp.Benchmarks.InterleavedMatMulAlternation.Run(args); return; // MatMul with interleaved rows against without
    case "paths": KvSharp.Benchmarks.PathAlternation.Run(args); return; // one type's products on each SIMD path
    case "score-prompt": KvSharp.Benchmarks.PromptScoringAlternation.Run(args); return; // a prompt scored (every position's logprobs) against computed for one token
    case "widened": KvSharp.Benchmarks.WidenedKernelProbe.Run(args); return; // the widened F16 kernels alone, their rows hot or cycling
    case "variants": KvSharp.Benchmarks.MatMulVariantsAlternation.Run(args); return; // MXFP4 plain, interleaved on each path, IQ4_NL interleaved
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
