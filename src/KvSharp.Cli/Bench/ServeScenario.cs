using System.Diagnostics;
using System.Text.Json.Nodes;
using KvSharp.Server;
using KvSharp.Templates;

namespace KvSharp.Cli.Bench;

/// <summary>
/// N concurrent streaming clients over HTTP on a multi-turn chat: each client holds a conversation (a system prompt
/// shared by all, then its own user messages) and every turn resends the whole history plus a new message, as chat
/// front-ends do, so the server's prefix cache decides how much of each prompt is prefilled again. Per client count:
/// time to first token and inter-token latency (p50, p99, on the client's clock), aggregate generated tokens/s,
/// prefix hit rate (cached over prompt tokens, as the server reports them), requests completed and failed.
/// <para>
/// Without --url the server is kvsharp's own, in this process on 127.0.0.1 (an ephemeral port), and the scenario also
/// measures what HTTP costs: one stream's decode time per token through the server against the in-process engine on
/// the same prompt. With --url it drives any OpenAI-compatible server (llama-server -np N on the same GGUF) with
/// exactly the same requests: greedy, fixed seed, bounded max_tokens, only standard fields.
/// </para>
/// </summary>
public static class ServeScenario
{
    public static readonly int[] DefaultClients = [1, 4, 16];
    public const int DefaultMaxTokens = 64, DefaultUserWords = 32, DefaultSystemWords = 64;

    /// <summary>Against kvsharp's own server, in process, over the bench's model.</summary>
    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        var model = info.Model;
        var p = Plan.Of(s);
        var template = ChatTemplate.ForModel(model);
        int longest = LongestPrompt(p, template, model);
        info.CheckFits(longest + p.MaxTokens, "the last turn's prompt + --max-tokens");
        // Room for every client's whole conversation at once (a quarter more for replies that re-tokenize longer),
        // so the measurement is of serving, not of preemption in a budget too small.
        long budget = Math.Max(s.KvBudgetMiBOrDefault << 20, info.KvBytesPerToken * (longest + p.MaxTokens + 2L * s.BlockSize) * p.Clients.Max() * 5 / 4);
        var engineOptions = EngineBench.Options(s, info.Model.Config, info.ContextLength, budget, prefixCaching: true, maxRunning: Math.Max(p.Clients.Max(), 1));

        EngineBench.WarmUp(s, model, log, Math.Min(info.ContextLength, 256));
        // The single stream's own engine needs room for one sequence only.
        var singleOptions = engineOptions with { KvBudgetBytes = info.KvBytesPerToken * (longest + p.MaxTokens + 2L * s.BlockSize) };
        using var local = new InProcessStream(model, singleOptions, template, OverheadPrompt(p), p.MaxTokens, p.Seed);

        var result = info.Describe("serve");
        result["server"] = "kvsharp (in process)";
        return Task.Run(async () =>
        {
            await using var server = KvSharpServer.Create(model, new ServerOptions { Port = 0, Engine = engineOptions, ChatTemplate = template });
            await server.StartAsync();
            log.Line($"serving on {server.BaseAddress} (chat template {template.Name}; KV {server.Engine.Pool.BlockCount} blocks of {server.Engine.Pool.BlockSize})");
            await DriveAsync(s, p, server.BaseAddress.ToString(), local, log, table, result);
            return result;
        }).GetAwaiter().GetResult();
    }

    /// <summary>Against the server at --url (no model is loaded here).</summary>
    public static JsonObject RunExternal(BenchSettings s, BenchLog log, TextWriter table)
    {
        var result = new JsonObject { ["scenario"] = "serve", ["server"] = "external", ["model"] = null };
        Task.Run(() => DriveAsync(s, Plan.Of(s), s.Url!, null, log, table, result)).GetAwaiter().GetResult();
        return result;
    }

    /// <summary>The workload's parameters, defaulted.</summary>
    private sealed record Plan(int[] Clients, int Turns, int MaxTokens, int UserWords, int SystemWords, ulong Seed)
    {
        public static Plan Of(BenchSettings s) => new(s.Clients is { Length: > 0 } c ? c : DefaultClients, s.Turns,
            s.GenTokens ?? DefaultMaxTokens, s.PromptTokens ?? DefaultUserWords, s.SystemTokens ?? DefaultSystemWords, s.Seed);

        public ServeWorkload Workload(int round) => new(Seed, round, SystemWords, UserWords);
    }

    // Rounds of the workload that are not a client count's: each gets its own text so no round finds another's prefix.
    private const int WarmUpRound = -1, OverheadRound = -2;

    /// <summary>The single-stream comparison's messages: a first turn of a round no client count uses.</summary>
    private static JsonArray OverheadPrompt(Plan p) => p.Workload(OverheadRound).NewConversationWithTurn(0, 0);

    /// <summary>Tokens in the last turn's prompt when every earlier reply is max_tokens long.</summary>
    private static int LongestPrompt(Plan p, ChatTemplate template, LlmModel model)
    {
        var w = p.Workload(0);
        var messages = w.HasSystemPrompt ? new List<ChatMessage> { ChatMessage.System(w.SystemPrompt) } : [];
        for (int t = 0; t < p.Turns; t++)
        {
            messages.Add(ChatMessage.User(w.UserMessage(0, t)));
            if (t < p.Turns - 1) messages.Add(ChatMessage.Assistant(""));
        }
        return template.Render(messages, addGenerationPrompt: true, model.Tokenizer).Tokenize(model.Tokenizer).Length + (p.Turns - 1) * p.MaxTokens;
    }

    private static async Task DriveAsync(BenchSettings s, Plan p, string url, InProcessStream? local, BenchLog log, TextWriter table, JsonObject result)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue }) { Timeout = TimeSpan.FromMinutes(10) };
        // An external server may close a kept-alive connection between requests (llama-server's HTTP library does after
        // a few requests), which races the next request sent on it; there each request gets its own connection
        // (a loopback connect costs about 0.1 ms, beside time to first token in milliseconds).
        var chat = new ServeChatClient(http, ChatCompletionsUri(url), closeConnections: local == null, tools: s.Tools ? ServeChatClient.WeatherTool() : null);
        var responses = s.Api == "responses"
            ? new ServeResponsesClient(http, ResponsesUri(url), closeConnections: local == null, tools: s.Tools ? ServeResponsesClient.Flat(ServeChatClient.WeatherTool()) : null) : null;
        var progress = new ServeProgress(log);

        var clock = Stopwatch.StartNew();
        for (int run = 0; run == 0 || clock.Elapsed.TotalSeconds < s.WarmUpSeconds; run++)
        {
            var warm = await RunLevelAsync(chat, responses, p, p.Workload(WarmUpRound - run * 1000), Math.Min(2, p.Clients.Max()), Math.Min(2, p.Turns), progress, "warm-up");
            if (warm.Completed == 0) throw new InvalidOperationException($"every warm-up request to {url} failed: {warm.Json()["errors"]!.ToJsonString()}");
        }
        var (http1, inProcess) = await ServeSingleStream.MeasureAsync(chat, local, OverheadPrompt(p), p.MaxTokens, p.Seed, s.Repetitions ?? 3, progress);

        var levels = new List<ServeLevel>();
        for (int i = 0; i < p.Clients.Length; i++)
            levels.Add(await RunLevelAsync(chat, responses, p, p.Workload(i), p.Clients[i], p.Turns, progress, $"{p.Clients[i]} clients"));
        log.EndProgress();

        result["url"] = url;
        result["clients"] = new JsonArray(p.Clients.Select(c => (JsonNode?)c).ToArray());
        result["turns"] = p.Turns;
        result["max_tokens"] = p.MaxTokens;
        result["user_words"] = p.UserWords;
        result["system_words"] = p.SystemWords;
        result["tools"] = s.Tools;
        result["api"] = s.Api;
        result["workload_seed"] = p.Seed;
        result["levels"] = new JsonArray(levels.Select(l => (JsonNode?)l.Json()).ToArray());
        var overhead = new Ratio((http1.MsPerToken ?? 0) - (inProcess?.MsPerToken ?? 0), inProcess?.MsPerToken ?? 0);
        result["http_overhead"] = new JsonObject
        {
            ["prompt_tokens"] = http1.PromptTokens,
            ["http_decode_ms_per_token"] = http1.MsPerToken,
            ["http_completion_tokens"] = http1.Tokens,
            ["in_process_decode_ms_per_token"] = inProcess?.MsPerToken,
            ["in_process_completion_tokens"] = inProcess?.Tokens,
            ["http_over_in_process_percent"] = http1.MsPerToken == null ? null : overhead.Value is double o ? o * 100 : null,
        };

        var t = new BenchTable("clients", "ok", "failed", "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms", "ITL p99 ms", "tok/s", "prefix hit");
        foreach (var l in levels)
            t.Add($"{l.Clients}", $"{l.Completed}", $"{l.Failed}", $"{l.TtftP50:F1}", $"{l.TtftP99:F1}", $"{l.ItlP50:F2}", $"{l.ItlP99:F2}",
                $"{l.TokensPerSecond:F1}", l.HitPercent.Text("F1", suffix: "%"));
        table.WriteLine();
        t.Write(table);
        table.WriteLine($"{p.Turns} turns per client, user messages of {p.UserWords} words after a shared {p.SystemWords}-word system prompt, max_tokens {p.MaxTokens}, greedy, seed {p.Seed}, " +
            (responses == null ? "each turn resends the conversation (/v1/chat/completions)" : "each turn sends its message and previous_response_id (/v1/responses)"));
        var sources = levels.Select(l => l.CachedFrom).Distinct().ToList();
        if (sources.Contains(null)) table.WriteLine("prefix hit n/a: the server reported no cached prompt tokens (usage.prompt_tokens_details.cached_tokens)");
        if (sources.Contains(ServeResponse.FromTimings)) table.WriteLine($"prefix hit from {ServeResponse.FromTimings} (llama-server's prompt tokens reused from the slot)");
        foreach (var l in levels.Where(l => l.Failed > 0))
            table.WriteLine($"{l.Clients} clients: {l.Failed} requests failed: {string.Join("; ", l.Json()["errors"]!.AsArray().Select(e => e!.GetValue<string>()))}");

        var single = new BenchTable("single stream", "decode ms/token", "tokens", "vs in process");
        single.Add("in-process engine", inProcess?.MsPerToken is double ip ? $"{ip:F3}" : "n/a", inProcess?.Tokens.ToString() ?? "n/a", "");
        single.Add("HTTP (SSE)", http1.MsPerToken is double hp ? $"{hp:F3}" : "n/a", $"{http1.Tokens}",
            inProcess == null ? "n/a (external server)" : overhead.Value is double pct ? $"{pct * 100:+0.0;-0.0}%" : "n/a");
        table.WriteLine();
        single.Write(table);
    }

    /// <summary>http://host:port, http://host:port/ or http://host:port/v1 → …/v1/chat/completions.</summary>
    public static Uri ChatCompletionsUri(string url) => V1(url, "chat/completions");

    /// <summary>The same for …/v1/responses.</summary>
    public static Uri ResponsesUri(string url) => V1(url, "responses");

    private static Uri V1(string url, string path)
    {
        string trimmed = url.TrimEnd('/');
        return new Uri(trimmed.EndsWith("/v1", StringComparison.Ordinal) ? $"{trimmed}/{path}" : $"{trimmed}/v1/{path}");
    }

    /// <param name="responses">Null: each turn resends the conversation as chat; else each sends its message and the previous response's id.</param>
    private static async Task<ServeLevel> RunLevelAsync(ServeChatClient chat, ServeResponsesClient? responses, Plan p, ServeWorkload w, int clients, int turns,
        ServeProgress progress, string what)
    {
        progress.Start(what, clients * turns);
        var clock = Stopwatch.StartNew();
        var conversations = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var done = new List<(int Client, int Turn, ServeResponse Response)>();
            var history = w.NewConversation();
            string? previous = null;
            for (int t = 0; t < turns; t++)
            {
                ServeResponse r;
                if (responses != null)
                    (r, previous) = await responses.RespondAsync(w.HasSystemPrompt ? w.SystemPrompt : null, w.UserMessage(c, t), previous, p.MaxTokens, CancellationToken.None);
                else
                {
                    history.Add(ServeWorkload.Message("user", w.UserMessage(c, t)));
                    r = await chat.ChatAsync(history, p.MaxTokens, p.Seed + (ulong)c, CancellationToken.None);
                    if (r.Ok) history.Add(ServeWorkload.Message("assistant", r.Text));
                }
                done.Add((c, t, r));
                progress.RequestDone();
                if (!r.Ok) break; // the conversation cannot go on without its reply
            }
            return done;
        })).ToArray();
        var requests = (await Task.WhenAll(conversations)).SelectMany(r => r).ToList();
        return new ServeLevel(clients, turns, requests, clock.Elapsed.TotalSeconds);
    }
}
