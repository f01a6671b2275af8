using System.CommandLine;
using KvSharp.Router;
using KvSharp.Router.Routing;

namespace KvSharp.Cli;

/// <summary>`kvsharp router`: one address in front of several `kvsharp serve` replicas, routing each prompt to the replica that holds its prefix.</summary>
internal static class RouterCommand
{
    public static Command Create()
    {
        var replicas = new Option<string[]>("--replica")
        {
            Description = "a kvsharp serve replica's base URL, e.g. http://10.0.0.5:8080 (repeat for each replica)",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var host = new Option<string>("--host")
        {
            Description = "address to listen on: 127.0.0.1 (this machine only), or e.g. 0.0.0.0 for every interface",
            DefaultValueFactory = _ => "127.0.0.1",
        };
        var port = NumberOption.Create("--port", "TCP port (0: any free port)", 8000, new Allowed<int>(p => p is >= 0 and <= 65535, "a whole number in [0, 65535]"));
        var policy = ChoiceOption.Create("--policy", "prefix: by prompt prefix, bounded by load; round-robin: in turn (the baseline)",
            [new Choice<RoutingPolicy>("prefix", RoutingPolicy.PrefixAffinity), new Choice<RoutingPolicy>("round-robin", RoutingPolicy.RoundRobin)], RoutingPolicy.PrefixAffinity);
        var blockChars = NumberOption.Create("--block-chars", "prompt characters per affinity block (about 4 per token: 64 is one 16-token KV block)", 64, Allowed.AtLeast(1));
        var loadFactor = NumberOption.Create("--load-factor", "a replica takes at most this times the mean in-flight requests (plus --load-slack) before its prefixes spill to the next", 1.25, Allowed.AtLeast(1.0));
        var loadSlack = NumberOption.Create("--load-slack", "requests a replica may take beyond --load-factor x the mean", 2, Allowed.AtLeast(0));
        var loadMargin = NumberOption.Create("--load-margin", "requests a replica may have in flight beyond the least loaded one before --load-factor applies (a spill costs the conversation its cached history)", 32, Allowed.AtLeast(0));
        var threshold = NumberOption.Create("--affinity-threshold", "share of a prompt's blocks its deepest known prefix must cover to follow it to that replica; a shorter match (a shared system prompt) is a new conversation, placed where the least KV has gone", 0.5, Allowed.Between(0.0, 1.0));
        var attempts = NumberOption.Create("--max-attempts", "tries per request, each on another replica, while its response has not started", 3, Allowed.AtLeast(1));
        var interval = NumberOption.Create("--health-interval-ms", "how often each replica's GET /health is polled", 2000, Allowed.AtLeast(1));
        var command = new Command("router", "route OpenAI requests over several `kvsharp serve` replicas by prompt prefix (YARP): each conversation stays with the replica that caches it; health checks and retries")
        {
            replicas, host, port, policy, blockChars, loadFactor, loadSlack, loadMargin, threshold, attempts, interval,
        };
        command.SetAction(r =>
        {
            var options = new RouterOptions
            {
                Replicas = r.GetValue(replicas)!.Select(ParseReplica).ToArray(),
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                Policy = r.GetValue(policy).Value,
                BlockChars = r.GetValue(blockChars),
                LoadFactor = r.GetValue(loadFactor),
                LoadSlack = r.GetValue(loadSlack),
                LoadMargin = r.GetValue(loadMargin),
                AffinityThreshold = r.GetValue(threshold),
                MaxAttempts = r.GetValue(attempts),
                HealthInterval = TimeSpan.FromMilliseconds(r.GetValue(interval)),
            };
            return Route(options, Console.Error).GetAwaiter().GetResult();
        });
        return command;
    }

    private static Uri ParseReplica(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) ? uri
            : throw new ArgumentException($"--replica {text} is not an http:// or https:// URL (e.g. http://127.0.0.1:8080)");

    private static async Task<int> Route(RouterOptions options, TextWriter log)
    {
        await using var router = KvSharpRouter.Create(options);
        await router.StartAsync();
        log.WriteLine($"[kvsharp] routing at {router.BaseAddress} over {options.Replicas.Count} replicas ({string.Join(", ", router.Replicas.All.Select(x => x.Name))}), " +
            $"policy {(options.Policy == RoutingPolicy.PrefixAffinity ? "prefix" : "round-robin")}; its own: /health, /router/replicas, /metrics; Ctrl-C stops");
        await router.WaitForShutdownAsync();
        log.WriteLine("[kvsharp] stopped");
        return 0;
    }
}
