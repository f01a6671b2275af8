using System.CommandLine;
using KvSharp.Cache;
using KvSharp.Server;

namespace KvSharp.Cli.Bench;

/// <summary>`kvsharp bench`: the benchmark program (speed and cache scenarios) on a model file or a synthetic model.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var scenario = ChoiceOption.Create("--scenario",
            "speed (prefill/decode tokens/s), cache (with vs without the KV cache; with the defaults it takes minutes: the none baseline " +
            "recomputes about 33 TFLOP, some 6 minutes at 90 GFLOP/s; it prints an estimate after the warm-up and the progress line shows an ETA; -p/-n or --no-sweep shorten it), " +
            "capacity (sessions in a KV budget), concurrency (batched decode), multiturn (prefix caching), " +
            "serve (concurrent streaming chat clients over HTTP, kvsharp's server in process or --url), " +
            "tiers (a 2,000-token prefix from RAM, disk, Redis and recomputed), " +
            "router (prefix-aware routing over 3 replicas, --replicas), " +
            "inspector (decode tokens/s with and without the inspector's event stream, ABBA)",
            ChoiceOption.Of<BenchScenario>(), BenchScenario.Speed, aliases: "-s");
        var model = new Option<string?>("--model", "-m") { Description = "GGUF model file (default: a synthetic model)" };
        var tokenizer = CommonOptions.Tokenizer();
        var synthetic = new Option<string?>("--synthetic") { Description = "synthetic shape: tiny, small, smollm2-135m (gqa), llama-3.2-1b (1b); default small for speed, tiny for cache" };
        var vocab = new Option<string?>("--vocab")
        {
            Description = "synthetic model: copy the vocabulary, merges, special ids and chat template of this GGUF " +
                          "(e.g. llama.cpp's ggml-vocab-llama3.gguf); the vocabulary size follows it",
        };
        var type = new Option<string?>("--type") { Description = "synthetic weight type: f32, f16, bf16, q8_0, q4_0, q5_0, q5_1, q4_k, q5_k, q6_k, q3_k, q2_k, q4_1, iq4_nl, iq4_xs, mxfp4 (default q8_0)" };
        var context = NumberOption.Optional("--context", "context length (synthetic: written to the model's metadata)", Allowed.AtLeast(1), "-c");
        var seed = NumberOption.Create("--seed", "synthetic weights seed", Synthetic.SyntheticModelBuilder.DefaultSeed, Allowed.AnyUInt64);
        var prompt = NumberOption.Optional("--prompt-tokens", "prompt length: one measurement at exactly these lengths (default speed 128 and 512, cache 2000; " +
            "serve: words per user message, default 32)", Allowed.AtLeast(1), "-p");
        var gen = NumberOption.Optional("--gen-tokens", "tokens to generate (default speed 64 and 256, cache 500; serve: max_tokens per request, default 64)", Allowed.AtLeast(1), "-n", "--max-tokens");
        var depth = NumberOption.Optional("--depth", "speed scenario: positions already in the cache when the timed decode starts " +
            "(tg N @ dD, llama-bench's -d; default 0: after a 1-token prompt, the cache nearly empty)", Allowed.AtLeast(0), "-d");
        var threads = CommonOptions.Threads();
        var reps = NumberOption.Optional("--repetitions", "measured runs per length after a warm-up; the median is reported (default speed 5, concurrency 3 per level, cache 1)", Allowed.AtLeast(1), "-r");
        var warmup = NumberOption.Create("--warmup", "seconds of warm-up runs before each measured length (at least 2 runs)", 3.0, Allowed.AtLeast(0.0));
        var cache = ChoiceOption.Create("--cache", "cache scenario: the cache compared with none",
            ChoiceOption.Of<KvCacheMode>().Where(c => c.Value != KvCacheMode.None).ToArray(), KvCacheMode.Contiguous);
        var noSweep = new Option<bool>("--no-sweep") { Description = "cache scenario: skip the sweep over generated lengths 64, 256, 1024" };
        var kvTypes = new KvTypeCliOptions();
        var budget = NumberOption.Optional("--kv-budget-mib", "engine scenarios: KV memory budget in MiB (default 64; router: each replica's share of the conversations)", Allowed.AtLeast(1L));
        var blockSize = NumberOption.Optional("--block-size", "engine scenarios: positions per KV block (default 16, or 32 for a KIVI type)", Allowed.AtLeast(1));
        var turns = NumberOption.Create("--turns", "multiturn and serve scenarios: chat turns (per client)", 8, Allowed.AtLeast(1));
        var clients = new Option<string[]>("--clients")
        {
            Description = "serve scenario: concurrent clients, one run per count (repeat the option or give a list: 1,4,16; default 1,4,16)",
            AllowMultipleArgumentsPerToken = false,
        };
        var systemWords = NumberOption.Optional("--system-tokens", "serve scenario: words in the system prompt all conversations share (default 64; 0: none)", Allowed.AtLeast(0));
        var url = new Option<string?>("--url") { Description = "serve scenario: drive this OpenAI-compatible server (e.g. http://127.0.0.1:8080 for llama-server -np N) instead of kvsharp's own" };
        var redis = new Option<string?>("--redis") { Description = "tiers scenario: Redis or Garnet server HOST:PORT (default: an embedded Garnet)" };
        var users = NumberOption.Create("--users", "router scenario: users chatting at once", 24, Allowed.AtLeast(1));
        var replicas = NumberOption.Create("--replicas", "router scenario: kvsharp serve replicas behind the router (each gets --threads / replicas threads, at least one)", RouterScenario.DefaultReplicas, Allowed.AtLeast(2));
        var json = new Option<bool>("--json") { Description = "print one JSON object to stdout (the table goes to stderr)" };
        var write = new Option<string?>("--write") { Description = "write the synthetic model to this GGUF file and exit" };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "where synthetic models are cached (default $XDG_CACHE_HOME or ~/.cache, /kvsharp/synthetic)" };
        var command = new Command("bench", "benchmark prefill/decode speed or the KV cache against recomputation (no download needed: synthetic models)")
        {
            scenario, model, tokenizer, synthetic, vocab, type, context, seed, prompt, gen, depth, threads, reps, warmup, cache, noSweep, budget, blockSize, turns, clients, systemWords, url, users, replicas, json, write, cacheDir,
        };
        command.Options.Add(redis);
        var swaFull = CommonOptions.SwaFull();
        command.Options.Add(swaFull);
        var inspectorInterval = NumberOption.Create("--inspector-interval-ms", "inspector scenario: the server's shortest time between two snapshots of the event stream",
            (int)new ServerOptions().InspectorInterval.TotalMilliseconds, Allowed.AtLeast((int)ServerOptions.MinInspectorInterval.TotalMilliseconds));
        command.Options.Add(inspectorInterval);
        var browser = new Option<string?>("--browser") { Description = "inspector scenario: open the page in this headless Chromium-family browser (e.g. /usr/bin/chromium) instead of only reading its event stream" };
        command.Options.Add(browser);
        var tools = new Option<bool>("--tools") { Description = "serve scenario: every request offers one function tool (get_weather), so time to first token is that of a reply read for calls; the served chat template must render tools" };
        command.Options.Add(tools);
        var api = new Option<string>("--api")
        {
            Description = "serve scenario: chat (each turn resends the whole conversation to /v1/chat/completions) or responses (each turn sends its new message and previous_response_id to /v1/responses)",
            DefaultValueFactory = _ => "chat",
        };
        api.AcceptOnlyFromAmong("chat", "responses");
        command.Options.Add(api);
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
                VocabPath = r.GetValue(vocab),
                ContextLength = r.GetValue(context),
                Seed = r.GetValue(seed),
                PromptTokens = r.GetValue(prompt),
                GenTokens = r.GetValue(gen),
                Depth = r.GetValue(depth),
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
                Turns = r.GetValue(turns),
                Clients = BenchSettings.ParseClients(r.GetValue(clients)),
                SystemTokens = r.GetValue(systemWords),
                Url = r.GetValue(url),
                Redis = r.GetValue(redis),
                Users = r.GetValue(users),
                Replicas = r.GetValue(replicas),
                InspectorIntervalMs = r.GetValue(inspectorInterval),
                Browser = r.GetValue(browser),
                Tools = r.GetValue(tools),
                Api = r.GetValue(api)!,
                FullLocalLayers = r.GetValue(swaFull),
            };
            if (r.GetValue(blockSize) is int size) settings = settings with { BlockSize = size };
            return BenchRunner.Run(settings, Console.Out, Console.Error);
        });
        return command;
    }
}
