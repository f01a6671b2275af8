using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Router;
using KvSharp.Router.Routing;
using KvSharp.Server;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Many users chatting at once through `kvsharp router` to 3 (--replicas) in-process `kvsharp serve` replicas, routed by prompt
/// prefix and then round-robin, each with fresh replicas: the prefix hit rate (prompt tokens the replicas served from
/// their prefix caches) and the aggregate tokens/s. Every user holds one growing conversation (a short system prompt
/// all users share, an opening message of --prompt-tokens of their own, then per turn a 32-token message and a
/// --gen-tokens reply) as completion prompts over HTTP, so the router sees what a real client sends. Round-robin
/// spreads each conversation over every replica: a turn finds its history only where an earlier turn happened to
/// land, and each replica's KV budget must hold every conversation instead of its share of them. Each turn names the
/// completion it continues (<c>continues</c>), as a client of kvsharp serve can: the replica that generated the last
/// reply takes the ids it generated for that text instead of re-tokenizing it (which need not give them back, and
/// then misses the cache from the first token that differs); any other replica tokenizes the text whole.
/// <para>
/// Each replica's KV budget is by default its share of the conversations' warm KV, as docs/deploy.md sizes a
/// deployment: the users a replica serves under prefix routing (users / replicas, rounded up) times a conversation's mean
/// length over its turns (deploy.md's L_avg), in whole blocks. That is what scale-out buys: with memory for every conversation on every replica (a larger
/// --kv-budget-mib), round-robin also finds most of a conversation wherever a turn lands, and routing matters less.
/// </para>
/// </summary>
public static class RouterScenario
{
    /// <summary>Replicas when --replicas is not given.</summary>
    public const int DefaultReplicas = 3;
    private const int SystemTokens = 64, TurnTokens = 32;

    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        int users = s.Users, turns = s.Turns, opening = s.PromptTokens ?? 128, reply = s.GenTokens ?? 32, replicas = s.Replicas;
        var workload = Workload.Create(users, turns, opening);
        // The words' text as this model's tokenizer counts it (a word is a token or a few), plus the replies and a tenth.
        int TokensAfter(int turn) => info.Model.Tokenizer.Encode(workload.System + "\n" + workload.Openings[0] +
            string.Concat(workload.Messages[0].Take(turn).Select(m => "\nUser: " + m + "\nAssistant:")), addSpecial: true, parseSpecial: false).Length + turn * reply;
        int longest = TokensAfter(turns);
        info.CheckFits(longest + longest / 10, "the longest conversation (64 words + --prompt-tokens words + --turns x (32 words + --gen-tokens), in this model's tokens, plus a tenth)");
        // deploy.md's L_avg: a conversation's mean length over its turns (it grows by the same amount each turn).
        int mean = (TokensAfter(1) + longest + 1) / 2;
        long budgetMiB = s.KvBudgetMiB ?? ShareMiB(users, replicas, mean, s.BlockSize, info.KvBytesPerToken);

        var results = new[] { RoutingPolicy.PrefixAffinity, RoutingPolicy.RoundRobin }
            .Select(policy => RunPolicy(s, info, log, workload, policy, reply, budgetMiB)).ToArray();
        log.EndProgress();
        var (prefix, roundRobin) = (results[0], results[1]);
        var hitRatio = new Ratio(prefix.HitRate, roundRobin.HitRate);
        var speedRatio = new Ratio(prefix.TokensPerSecond, roundRobin.TokensPerSecond);

        var t = new BenchTable("routing", "requests", "prompt tokens", "cached", "hit rate", "completion tokens", "wall s", "tokens/s", "requests per replica");
        foreach (var r in results)
            t.Add(r.Name, r.Requests.ToString(), r.PromptTokens.ToString(), r.CachedTokens.ToString(), $"{r.HitRate:P1}", r.CompletionTokens.ToString(),
                $"{r.WallSeconds:F2}", $"{r.TokensPerSecond:F1}", string.Join(" / ", r.PerReplica));
        table.WriteLine();
        t.Write(table);
        foreach (var r in results)
            table.WriteLine($"{r.Name}: hits lost on the turn's previous replica {r.Lost.LostSameReplica} tokens, on turns that moved ({r.Lost.MovedTurns}) {r.Lost.LostMoved}; " +
                            $"blocks evicted {string.Join(" / ", r.Lost.EvictedBlocks)}, preemptions {string.Join(" / ", r.Lost.Preemptions)}");
        table.WriteLine($"{users} users x {turns} turns on {replicas} replicas ({budgetMiB} MiB of KV each{(s.KvBudgetMiB == null ? ": a replica's share" : "")}): prefix hit rate {hitRatio.Text("F2")} round-robin's, " +
                        $"aggregate tokens/s {speedRatio.Text("F2")} (target: hit rate >= 2x)");

        return new JsonObject
        {
            ["scenario"] = "router",
            ["replicas"] = replicas,
            ["users"] = users,
            ["turns"] = turns,
            ["system_tokens"] = SystemTokens,
            ["opening_tokens"] = opening,
            ["turn_tokens"] = TurnTokens,
            ["reply_tokens"] = reply,
            ["kv_budget_mib_per_replica"] = budgetMiB,
            ["kv_budget_is_share"] = s.KvBudgetMiB == null,
            ["prefix"] = prefix.Json(),
            ["round_robin"] = roundRobin.Json(),
            ["hit_rate_ratio"] = hitRatio.Json,
            ["tokens_per_second_ratio"] = speedRatio.Json,
        };
    }

    /// <summary>
    /// A replica's share of the conversations' warm KV, in whole MiB: ceil(users / replicas) conversations of
    /// <paramref name="conversationTokens"/> (their mean length), each rounded up to whole blocks.
    /// </summary>
    public static long ShareMiB(int users, int replicas, int conversationTokens, int blockSize, long kvBytesPerToken)
    {
        long perReplica = (users + replicas - 1) / replicas;
        long blocks = (conversationTokens + blockSize - 1) / blockSize;
        long bytes = perReplica * blocks * blockSize * kvBytesPerToken;
        return (bytes + (1L << 20) - 1) >> 20;
    }

    /// <summary>
    /// The prompt text: one system prompt, each user's opening and per-turn messages, as seeded words from a small
    /// English list (about a token each). Not text decoded from random token ids: those hold stray bytes that do not
    /// re-encode to the same tokens once more text follows, and the turns of a chat would stop sharing their prefix.
    /// </summary>
    private sealed record Workload(string System, string[] Openings, string[][] Messages)
    {
        private static readonly string[] Words =
        [
            "the", "little", "girl", "saw", "a", "big", "red", "ball", "in", "park", "and", "she", "was", "happy", "her",
            "mom", "said", "to", "play", "with", "dog", "one", "day", "boy", "named", "tom", "went", "outside", "sun",
            "sky", "tree", "bird", "sang", "song", "they", "ran", "home", "ate", "cake", "it", "very", "good", "friend",
            "cat", "jumped", "over", "fence", "lily", "liked", "flowers", "water", "fish", "swim", "lake", "then", "smiled",
        ];

        public static Workload Create(int users, int turns, int opening)
        {
            static string Text(int words, int seed)
            {
                var rng = new Random(seed);
                return string.Join(' ', Enumerable.Range(0, words).Select(_ => Words[rng.Next(Words.Length)]));
            }
            return new Workload(Text(SystemTokens, 1),
                Enumerable.Range(0, users).Select(u => Text(opening, 1000 + u)).ToArray(),
                Enumerable.Range(0, users).Select(u => Enumerable.Range(0, turns).Select(k => Text(TurnTokens, 100_000 + u * turns + k)).ToArray()).ToArray());
        }
    }

    /// <summary>
    /// Where prefix hits were lost, from the client's side: a later turn could have found every token its previous turn
    /// held but the last (sampled, never run). What it found less is lost, either on the replica the previous turn ran
    /// on (its cache evicted them) or on another (the turn moved: the load bound spilled it, or a replica failed).
    /// Plus, per replica, the cached blocks its prefix cache evicted and the sequences its engine preempted.
    /// </summary>
    private sealed record Losses(int MovedTurns, long LostMoved, long LostSameReplica, long[] LostByTurn, long[] EvictedBlocks, long[] Preemptions)
    {
        public JsonObject Json() => new()
        {
            ["turns_moved"] = MovedTurns,
            ["lost_tokens_moved"] = LostMoved,
            ["lost_tokens_same_replica"] = LostSameReplica,
            ["lost_tokens_by_turn"] = new JsonArray(LostByTurn.Select(n => (JsonNode)n).ToArray()),
            ["evicted_blocks_per_replica"] = new JsonArray(EvictedBlocks.Select(n => (JsonNode)n).ToArray()),
            ["preemptions_per_replica"] = new JsonArray(Preemptions.Select(n => (JsonNode)n).ToArray()),
        };
    }

    private sealed record PolicyResult(string Name, int Requests, long PromptTokens, long CachedTokens, long ContinuedTokens, long CompletionTokens, double WallSeconds, int[] PerReplica, Losses Lost)
    {
        public double HitRate => PromptTokens == 0 ? 0 : (double)CachedTokens / PromptTokens;
        /// <summary>Tokens served (prompt and completion) per second of wall time: a cached prompt token is served, not computed.</summary>
        public double TokensPerSecond => (PromptTokens + CompletionTokens) / WallSeconds;

        public JsonObject Json() => new()
        {
            ["requests"] = Requests,
            ["prompt_tokens"] = PromptTokens,
            ["cached_tokens"] = CachedTokens,
            ["continued_tokens"] = ContinuedTokens,
            ["completion_tokens"] = CompletionTokens,
            ["prefix_hit_rate"] = HitRate,
            ["wall_seconds"] = WallSeconds,
            ["tokens_per_second"] = TokensPerSecond,
            ["requests_per_replica"] = new JsonArray(PerReplica.Select(n => (JsonNode)n).ToArray()),
            ["losses"] = Lost.Json(),
        };
    }

    private static PolicyResult RunPolicy(BenchSettings s, BenchModelInfo info, BenchLog log, Workload workload, RoutingPolicy policy, int reply, long budgetMiB)
    {
        string name = policy == RoutingPolicy.PrefixAffinity ? "prefix" : "round-robin";
        var models = new List<LlmModel>();
        var servers = new List<KvSharpServer>();
        var engine = new EngineOptions { ContextLength = info.ContextLength, BlockSize = s.BlockSize, KeyElementType = s.KeyElementType, ValueElementType = s.ValueElementType };
        // The budget is the block pool's; a KIVI type's exact rows come on top, as in the engine scenarios.
        engine = engine with { KvBudgetBytes = (budgetMiB << 20) + engine.ExactRowsBytes(info.Model.Config) };
        try
        {
            for (int i = 0; i < s.Replicas; i++)
            {
                // Each replica its own model (memory-mapped, so the weights are shared by the OS) and a third of the threads.
                var model = LlmModel.Load(info.Path, new ModelLoadOptions { Threads = Math.Max(1, info.Threads / s.Replicas), TokenizerPath = s.TokenizerPath });
                models.Add(model);
                var server = KvSharpServer.Create(model, new ServerOptions
                {
                    Port = 0,
                    Engine = engine,
                });
                servers.Add(server);
                server.StartAsync().GetAwaiter().GetResult();
            }
            var result = RunThroughRouter(servers, workload, policy, name, reply, log).GetAwaiter().GetResult();
            return result with
            {
                Lost = result.Lost with
                {
                    EvictedBlocks = servers.Select(x => x.Engine.PrefixCache.EvictedBlocks).ToArray(),
                    Preemptions = servers.Select(x => x.Engine.Metrics.Preemptions).ToArray(),
                },
            };
        }
        finally
        {
            foreach (var server in servers) server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            foreach (var model in models) model.Dispose();
        }
    }

    private static async Task<PolicyResult> RunThroughRouter(List<KvSharpServer> servers, Workload workload, RoutingPolicy policy, string name, int reply, BenchLog log)
    {
        await using var router = KvSharpRouter.Create(new RouterOptions { Port = 0, Replicas = servers.Select(x => x.BaseAddress).ToArray(), Policy = policy });
        await router.StartAsync();
        using var client = new HttpClient { BaseAddress = router.BaseAddress, Timeout = TimeSpan.FromMinutes(30) };
        long prompt = 0, cached = 0, continued = 0, completion = 0, lostMoved = 0, lostSame = 0;
        int moved = 0;
        var lostByTurn = new long[workload.Messages[0].Length];
        int done = 0, total = workload.Openings.Length * workload.Messages[0].Length;
        var perReplica = new ConcurrentDictionary<string, int>();
        var clock = Stopwatch.StartNew();

        async Task Converse(int user)
        {
            string conversation = workload.System + "\n" + workload.Openings[user];
            string? previous = null, previousReplica = null;
            int held = 0, turn = 0;
            foreach (string message in workload.Messages[user])
            {
                conversation += "\nUser: " + message + "\nAssistant:";
                var body = new JsonObject { ["prompt"] = conversation, ["max_tokens"] = reply, ["ignore_eos"] = true, ["temperature"] = 0 };
                if (previous != null) body["continues"] = previous;
                using var response = await client.PostAsJsonAsync("/v1/completions", body);
                string text = await response.Content.ReadAsStringAsync();
                if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"router scenario ({name}): user {user} got {(int)response.StatusCode}: {text}");
                var json = JsonDocument.Parse(text).RootElement;
                var usage = json.GetProperty("usage");
                int promptTokens = usage.GetProperty("prompt_tokens").GetInt32(), hit = usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
                int completionTokens = usage.GetProperty("completion_tokens").GetInt32();
                Interlocked.Add(ref prompt, promptTokens);
                Interlocked.Add(ref cached, hit);
                Interlocked.Add(ref completion, completionTokens);
                string replica = response.Headers.GetValues("x-kvsharp-replica").First();
                if (previousReplica != null)
                {
                    long lost = Math.Max(0, held - 1 - hit);
                    Interlocked.Add(ref lostByTurn[turn], lost);
                    if (replica == previousReplica) Interlocked.Add(ref lostSame, lost);
                    else
                    {
                        Interlocked.Add(ref lostMoved, lost);
                        Interlocked.Increment(ref moved);
                    }
                }
                (previousReplica, held) = (replica, promptTokens + completionTokens);
                turn++;
                if (response.Headers.TryGetValues(Server.Continuations.PromptContinuation.ContinuedHeader, out var kept)) Interlocked.Add(ref continued, long.Parse(kept.First(), System.Globalization.CultureInfo.InvariantCulture));
                previous = json.GetProperty("id").GetString();
                perReplica.AddOrUpdate(replica, 1, (_, n) => n + 1);
                conversation += json.GetProperty("choices")[0].GetProperty("text").GetString();
                log.Progress($"{name}: {Interlocked.Increment(ref done)}/{total} requests", force: false);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, workload.Openings.Length).Select(Converse));
        double wall = clock.Elapsed.TotalSeconds;
        var counts = router.Replicas.All.Select(r => perReplica.GetValueOrDefault(r.Name)).ToArray();
        return new PolicyResult(name, total, prompt, cached, continued, completion, wall, counts, new Losses(moved, lostMoved, lostSame, lostByTurn, [], []));
    }
}
