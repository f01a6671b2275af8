using System.CommandLine;
using KvSharp.Cache;

namespace KvSharp.Cli.Bench;

/// <summary>`kvsharp bench`: the benchmark program (speed and cache scenarios) on a model file or a synthetic model.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var scenario = new Option<string>("--scenario", "-s") { Description = "speed (prefill/decode tokens/s), cache (with vs without the KV cache), capacity (sessions in a KV budget), concurrency (batched decode), multiturn (prefix caching)", DefaultValueFactory = _ => "speed" };
        var model = new Option<string?>("--model", "-m") { Description = "GGUF model file (default: a synthetic model)" };
        var tokenizer = CommonOptions.Tokenizer();
        var synthetic = new Option<string?>("--synthetic") { Description = "synthetic shape: tiny, small, smollm2-135m (gqa), llama-3.2-1b (1b); default small for speed, tiny for cache" };
        var type = new Option<string?>("--type") { Description = "synthetic weight type: f32, f16, bf16, q8_0, q4_0, q5_0, q5_1, q4_k, q5_k, q6_k (default q8_0)" };
        var context = new Option<int?>("--context", "-c") { Description = "context length (synthetic: written to the model's metadata)" };
        var seed = new Option<ulong>("--seed") { Description = "synthetic weights seed", DefaultValueFactory = _ => Synthetic.SyntheticModelBuilder.DefaultSeed };
        var prompt = new Option<int?>("--prompt-tokens", "-p") { Description = "prompt length: one measurement at exactly these lengths (default speed 128 and 512, cache 2000)" };
        var gen = new Option<int?>("--gen-tokens", "-n") { Description = "tokens to generate (default speed 64 and 256, cache 500)" };
        var threads = CommonOptions.Threads();
        var reps = new Option<int?>("--repetitions", "-r") { Description = "measured runs per length after a warm-up; the median is reported (default speed 5, concurrency 3 per level, cache 1)" };
        var warmup = new Option<double>("--warmup") { Description = "seconds of warm-up runs before each measured length (at least 2 runs)", DefaultValueFactory = _ => 3 };
        var cache = new Option<KvCacheMode>("--cache") { Description = "cache scenario: the cache compared with none (contiguous or static)", DefaultValueFactory = _ => KvCacheMode.Contiguous };
        var noSweep = new Option<bool>("--no-sweep") { Description = "cache scenario: skip the sweep over generated lengths 64, 256, 1024" };
        var kvType = CommonOptions.KvType();
        var budget = new Option<long>("--kv-budget-mib") { Description = "engine scenarios: KV memory budget in MiB", DefaultValueFactory = _ => 64 };
        var blockSize = new Option<int>("--block-size") { Description = "engine scenarios: positions per KV block", DefaultValueFactory = _ => 16 };
        var turns = new Option<int>("--turns") { Description = "multiturn scenario: chat turns", DefaultValueFactory = _ => 8 };
        var json = new Option<bool>("--json") { Description = "print one JSON object to stdout (the table goes to stderr)" };
        var write = new Option<string?>("--write") { Description = "write the synthetic model to this GGUF file and exit" };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "where synthetic models are cached (default $XDG_CACHE_HOME or ~/.cache, /kvsharp/synthetic)" };
        var command = new Command("bench", "benchmark prefill/decode speed or the KV cache against recomputation (no download needed: synthetic models)")
        {
            scenario, model, tokenizer, synthetic, type, context, seed, prompt, gen, threads, reps, warmup, cache, noSweep, kvType, budget, blockSize, turns, json, write, cacheDir,
        };
        command.SetAction(r => CliErrors.Run(() =>
        {
            var settings = new BenchSettings
            {
                Scenario = ParseScenario(r.GetValue(scenario)!),
                ModelPath = r.GetValue(model),
                TokenizerPath = r.GetValue(tokenizer),
                Synthetic = r.GetValue(synthetic),
                WeightType = r.GetValue(type),
                ContextLength = r.GetValue(context),
                Seed = r.GetValue(seed),
                PromptTokens = r.GetValue(prompt),
                GenTokens = r.GetValue(gen),
                Threads = r.GetValue(threads),
                Repetitions = r.GetValue(reps),
                WarmUpSeconds = r.GetValue(warmup),
                CacheMode = r.GetValue(cache),
                Sweep = !r.GetValue(noSweep),
                Json = r.GetValue(json),
                WritePath = r.GetValue(write),
                CacheDirectory = r.GetValue(cacheDir),
                KvType = KvElementTypes.Parse(r.GetValue(kvType)!),
                KvBudgetMiB = r.GetValue(budget),
                BlockSize = r.GetValue(blockSize),
                Turns = r.GetValue(turns),
            };
            return BenchRunner.Run(settings, Console.Out, Console.Error);
        }));
        return command;
    }

    public static BenchScenario ParseScenario(string name) => name.ToLowerInvariant() switch
    {
        "speed" => BenchScenario.Speed,
        "cache" => BenchScenario.Cache,
        "capacity" => BenchScenario.Capacity,
        "concurrency" => BenchScenario.Concurrency,
        "multiturn" => BenchScenario.Multiturn,
        _ => throw new ArgumentException($"unknown scenario '{name}' (known: speed, cache, capacity, concurrency, multiturn)"),
    };
}
