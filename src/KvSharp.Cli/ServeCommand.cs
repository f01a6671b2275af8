using System.CommandLine;
using KvSharp.Engine;
using KvSharp.Server;
using KvSharp.Templates;

namespace KvSharp.Cli;

/// <summary>`kvsharp serve`: an OpenAI-compatible HTTP server over one engine, until Ctrl-C (which cancels what is running).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.ModelOrDefault();
        var tokenizer = CommonOptions.Tokenizer();
        var host = new Option<string>("--host")
        {
            Description = "address to listen on: 127.0.0.1 (this machine only), or e.g. 0.0.0.0 for every interface",
            DefaultValueFactory = _ => "127.0.0.1",
        };
        var port = NumberOption.Create("--port", "TCP port (0: any free port)", 8080, new Allowed<int>(p => p is >= 0 and <= 65535, "a whole number in [0, 65535]"));
        var chatTemplate = CommonOptions.ChatTemplate();
        var apiKey = new Option<string?>("--api-key") { Description = "require this key (Authorization: Bearer KEY) on every endpoint but /health" };
        var context = NumberOption.Optional("--context", "longest sequence, prompt + output (default: the model's trained length)", Allowed.AtLeast(1), "-c");
        var budget = NumberOption.Create("--kv-budget-mib", "KV memory shared by all requests, in MiB", 256L, Allowed.AtLeast(1L));
        var kvTypes = new KvTypeCliOptions();
        var maxRunning = NumberOption.Create("--max-running", "most sequences decoding at once", 64, Allowed.AtLeast(1));
        var maxQueue = NumberOption.Create("--max-queue", "requests accepted beyond --max-running to wait for a slot; the next get 429", 256, Allowed.AtLeast(0));
        var storedResponses = NumberOption.Create("--stored-responses", "responses of /v1/responses kept to read back and to continue by previous_response_id (least recently used out first; 0: none)",
            new ServerOptions().StoredResponses, Allowed.AtLeast(0));
        var threads = CommonOptions.Threads();
        var swaFull = CommonOptions.SwaFull();
        var tiers = new KvTierCliOptions();
        var policy = KvPolicyOption.Single("--kv-policy",
            $"which positions the KV cache keeps for requests without kv_policy: {KvPolicyOption.Forms} (default: full, or the model's sliding window)");
        var sessionDir = new Option<string?>("--session-dir")
        {
            Description = "directory where POST /v1/kv/sessions/{id}/save writes a conversation's KV and /restore reads it back",
        };
        var inspectorInterval = NumberOption.Create("--inspector-interval-ms", "shortest time between two snapshots the inspector page (GET /) receives while the engine changes",
            (int)new ServerOptions().InspectorInterval.TotalMilliseconds, Allowed.AtLeast((int)ServerOptions.MinInspectorInterval.TotalMilliseconds));
        var command = new Command("serve", "serve the model over HTTP with OpenAI's API (POST /v1/chat/completions, /v1/completions, /v1/responses), continuous batching and prefix caching")
        {
            model, tokenizer, chatTemplate, host, port, apiKey, context, budget, maxRunning, maxQueue, threads,
        };
        foreach (var option in tiers.All) command.Options.Add(option);
        command.Options.Add(sessionDir);
        command.Options.Add(inspectorInterval);
        command.Options.Add(storedResponses);
        command.Options.Add(policy);
        command.Options.Add(swaFull);
        foreach (var option in kvTypes.All) command.Options.Add(option);
        command.SetAction(r =>
        {
            var kv = kvTypes.Read(r);
            long budgetMiB = r.GetValue(budget);
            KvMemory.CheckBudget(budgetMiB * 1048576.0, $"--kv-budget-mib {budgetMiB}", KvMemory.AvailableBytes());
            using var llm = CommonOptions.Load(DefaultModel.Resolve(r.GetValue(model), Console.Error), r.GetValue(tokenizer), r.ThreadCount(threads), r.GetValue(context));
            // Resolved once, before listening: a bad name or file is a startup error, not a failure of every chat request.
            var template = ChatTemplate.ForModel(llm, r.GetValue(chatTemplate));
            int trained = llm.Config.TrainedContextLength, ctx = r.GetValue(context) ?? trained;
            if (ctx > trained)
                Console.Error.WriteLine($"warning: context {ctx} exceeds the model's trained context length {trained}; quality may degrade past it");
            var defaultPolicy = r.GetValue(policy);
            // A budget past the context is a startup error, not a refusal of every request that names no policy.
            KvPolicyOption.CheckFits("--kv-policy", defaultPolicy, ctx);
            using var kvTiers = tiers.Create(r);
            var options = new ServerOptions
            {
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                ApiKey = r.GetValue(apiKey),
                MaxQueue = r.GetValue(maxQueue),
                StoredResponses = r.GetValue(storedResponses),
                InspectorInterval = TimeSpan.FromMilliseconds(r.GetValue(inspectorInterval)),
                ChatTemplate = template,
                SessionDirectory = r.GetValue(sessionDir) is { } dir ? SessionDirectory(dir) : null,
                Engine = new EngineOptions
                {
                    ContextLength = ctx,
                    KvBudgetBytes = budgetMiB << 20,
                    KeyElementType = kv.Keys,
                    ValueElementType = kv.Values,
                    MaxRunningSequences = r.GetValue(maxRunning),
                    KvTiers = kvTiers,
                    CachePolicy = defaultPolicy,
                    FullLocalLayers = r.GetValue(swaFull),
                },
            };
            // Only for an address Kestrel can listen on: a bad --host is one error line, without a warning before it.
            if (options.ApiKey == null && !IsLoopback(options.Host) && System.Net.IPAddress.TryParse(options.Host, out _))
                Console.Error.WriteLine($"warning: --host {options.Host} is reachable from other machines and no --api-key is set: anyone who can connect can use the model");
            return Serve(llm, options, Console.Error).GetAwaiter().GetResult();
        });
        return command;
    }

    private static string SessionDirectory(string path)
    {
        OutputPaths.CheckDirectory("--session-dir", path);
        return Directory.CreateDirectory(path).FullName;
    }

    private static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (System.Net.IPAddress.TryParse(host, out var ip) && System.Net.IPAddress.IsLoopback(ip));

    private static async Task<int> Serve(LlmModel model, ServerOptions options, TextWriter log)
    {
        await using var server = KvSharpServer.Create(model, options);
        await server.StartAsync();
        var pool = server.Engine.Pool;
        log.WriteLine($"[kvsharp] serving {Path.GetFileName(model.Path)} at {server.BaseAddress} (OpenAI API: POST /v1/chat/completions, /v1/completions; " +
            $"chat template {server.ChatTemplate.Name}; also /apply-template, /tokenize, /detokenize, /v1/models, /health, /metrics); context {server.Engine.ContextLength}, " +
            $"KV {pool.BlockCount} blocks of {pool.BlockSize} ({pool.Format.Name}); Ctrl-C stops");
        log.WriteLine($"[kvsharp] KV cache inspector: open {server.BaseAddress} in a browser");
        var groups = pool.LayerGroups;
        if (groups.SplitsLocalLayers)
            log.WriteLine($"[kvsharp] {model.Config.Architecture}'s local layers are kept apart ({groups}): their blocks behind the window of {groups.LocalWindow} go back to the pool (--swa-full keeps them)");
        else if (model.Config.HasLayerWindows && !options.Engine.FullLocalLayers)
            log.WriteLine($"[kvsharp] {model.Config.Architecture}'s local layers keep every position: " +
                (options.Engine.KvTiers != null ? "KV tiers store blocks of every layer" : $"{pool.Format.Name} quantizes rows in groups along positions"));
        // With local layers apart, each local group also holds the blocks of about one window (as the engine counts them).
        long localBlocks = groups.SplitsLocalLayers ? (groups.Count - 1L) * pool.MostLocalBlocks(options.Engine.MaxStepTokens, server.Engine.ContextLength) : 0;
        long holds = Math.Max(0, pool.BlockCount - localBlocks) * pool.BlockSize;
        if (holds < server.Engine.ContextLength)
            log.WriteLine($"warning: --kv-budget-mib {options.Engine.KvBudgetBytes >> 20} holds {holds:N0} tokens of KV, fewer than one sequence of the context " +
                $"{server.Engine.ContextLength:N0}: a request that needs more is refused (raise --kv-budget-mib or lower --context)");
        await server.WaitForShutdownAsync();
        log.WriteLine("[kvsharp] stopped");
        return 0;
    }
}
