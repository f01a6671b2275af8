using System.CommandLine;
using KvSharp.Cache;

namespace KvSharp.Cli.Bench;

/// <summary>`kvsharp bench`: the benchmark program (speed and cache scenarios) on a model file or a synthetic model.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var scenario = ChoiceOption.Create("--scenario",
            "speed (prefill/decode tokens/s), cache (with vs without the KV cache; with the defaults it takes minutes: the none baseline " +
            "recomputes about 33 TFLOP, some 6 minutes at 90 GFLOP/s; it prints an estimate after the warm-up and the progress line shows an ETA; -p/-n or --no-sweep shorten it), " +
            "capacity (sessions in a KV budget), concurrency (batched decode), multiturn (prefix caching)",
            ChoiceOption.Of<BenchScenario>(), BenchScenario.Speed, aliases: "-s");
        var model = new Option<string?>("--model", "-m") { Description = "GGUF model file (default: a synthetic model)" };
        var tokenizer = CommonOptions.Tokenizer();
        var synthetic = new Option<string?>("--synthetic") { Description = "synthetic shape: tiny, small, smollm2-135m (gqa), llama-3.2-1b (1b); default small for speed, tiny for cache" };
        var type = new Option<string?>("--type") { Description = "synthetic weight type: f32, f16, bf16, q8_0, q4_0, q5_0, q5_1, q4_k, q5_k, q6_k (default q8_0)" };
        var context = NumberOption.Optional("--context", "context length (synthetic: written to the model's metadata)", Allowed.AtLeast(1), "-c");
        var seed = NumberOption.Create("--seed", "synthetic weights seed", Synthetic.SyntheticModelBuilder.DefaultSeed, Allowed.AnyUInt64);
        var prompt = NumberOption.Optional("--prompt-tokens", "prompt length: one measurement at exactly these lengths (default speed 128 and 512, cache 2000)", Allowed.AtLeast(1), "-p");
        var gen = NumberOption.Optional("--gen-tokens", "tokens to generate (default speed 64 and 256, cache 500)", Allowed.AtLeast(1), "-n");
        var threads = CommonOptions.Threads();
        var reps = NumberOption.Optional("--repetitions", "measured runs per length after a warm-up; the median is reported (default speed 5, concurrency 3 per level, cache 1)", Allowed.AtLeast(1), "-r");
        var warmup = NumberOption.Create("--warmup", "seconds of warm-up runs before each measured length (at least 2 runs)", 3.0, Allowed.AtLeast(0.0));
        var cache = ChoiceOption.Create("--cache", "cache scenario: the cache compared with none",
            ChoiceOption.Of<KvCacheMode>().Where(c => c.Value != KvCacheMode.None).ToArray(), KvCacheMode.Contiguous);
        var noSweep = new Option<bool>("--no-sweep") { Description = "cache scenario: skip the sweep over generated lengths 64, 256, 1024" };
        var kvTypes = new KvTypeCliOptions();
        var budget = NumberOption.Create("--kv-budget-mib", "engine scenarios: KV memory budget in MiB", 64L, Allowed.AtLeast(1L));
        var blockSize = NumberOption.Create("--block-size", "engine scenarios: positions per KV block", 16, Allowed.AtLeast(1));
        var turns = NumberOption.Create("--turns", "multiturn scenario: chat turns", 8, Allowed.AtLeast(1));
        var json = new Option<bool>("--json") { Description = "print one JSON object to stdout (the table goes to stderr)" };
        var write = new Option<string?>("--write") { Description = "write the synthetic model to this GGUF file and exit" };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "where synthetic models are cached (default $XDG_CACHE_HOME or ~/.cache, /kvsharp/synthetic)" };
        var command = new Command("bench", "benchmark prefill/decode speed or the KV cache against recomputation (no download needed: synthetic models)")
        {
            scenario, model, tokenizer, synthetic, type, context, seed, prompt, gen, threads, reps, warmup, cache, noSweep, budget, blockSize, turns, json, write, cacheDir,
        };
        foreach (var option in kvTypes.All) command.Options.Add(option);
        command.SetAction(r =>
        {
            var kv = kvTypes.Read(r);
            var settings = new BenchSettings
            {
                Scenario = r.GetValue(scenario).Value,
                ModelPath = r.GetValue(model),
                TokenizerPath = r.GetValue(tokenizer),
                Synthetic = r.GetValue(synthetic),
                WeightType = r.GetValue(type),
                ContextLength = r.GetValue(context),
                Seed = r.GetValue(seed),
                PromptTokens = r.GetValue(prompt),
                GenTokens = r.GetValue(gen),
                Threads = r.ThreadCount(threads),
                Repetitions = r.GetValue(reps),
                WarmUpSeconds = r.GetValue(warmup),
                CacheMode = r.GetValue(cache).Value,
                Sweep = !r.GetValue(noSweep),
                Json = r.GetValue(json),
                WritePath = r.GetValue(write),
                CacheDirectory = r.GetValue(cacheDir),
                KvKeyType = kv.Keys,
                KvValueType = kv.Values,
                KvBudgetMiB = r.GetValue(budget),
                BlockSize = r.GetValue(blockSize),
                Turns = r.GetValue(turns),
            };
            return BenchRunner.Run(settings, Console.Out, Console.Error);
        });
        return command;
    }
}
