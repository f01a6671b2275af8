using System.Text.Json;
using KvSharp.Cli.Bench;

namespace KvSharp.Router.Tests;

/// <summary>`kvsharp bench --scenario router` runs end to end on a tiny workload and reports both policies (a smoke test: no timing is checked).</summary>
public class RouterBenchSmokeTests
{
    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public void TheRouterScenarioReportsHitRatesForBothPolicies(int replicas)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = BenchRunner.Run(new BenchSettings
        {
            Scenario = BenchScenario.Router,
            ModelPath = RouterRig.ModelPath,
            ContextLength = 1024,
            Users = 3,
            Replicas = replicas,
            Turns = 3,
            PromptTokens = 24,
            GenTokens = 4,
            Threads = 3,
            Json = true,
            MeasureBandwidth = false,
        }, stdout, stderr);
        Assert.Equal(0, exit);
        var json = JsonDocument.Parse(stdout.ToString()).RootElement;
        Assert.Equal("router", json.GetProperty("scenario").GetString());
        Assert.Equal(replicas, json.GetProperty("replicas").GetInt32());
        // The record names the replicas' kernels and CPU (they load the same file on this CPU), the JSON and the table alike.
        var paths = json.GetProperty("kernel_paths").EnumerateObject().ToList();
        Assert.NotEmpty(paths);
        Assert.All(paths, p => Assert.Contains($"{p.Name} {p.Value.GetString()}", stderr.ToString()));
        Assert.Equal(KvSharp.Tensors.CpuFeatures.DotNetSupported, json.GetProperty("cpu").GetProperty("dotnet").GetString());
        // No --kv-budget-mib: each replica gets its share, one conversation of the 3 users (stories260K's KV is 1,280 B
        // a token, so well under a MiB, rounded up to one).
        Assert.True(json.GetProperty("kv_budget_is_share").GetBoolean());
        Assert.Equal(1, json.GetProperty("kv_budget_mib_per_replica").GetInt64());
        foreach (string policy in new[] { "prefix", "round_robin" })
        {
            var r = json.GetProperty(policy);
            Assert.Equal(9, r.GetProperty("requests").GetInt32());
            Assert.Equal(9 * 4, r.GetProperty("completion_tokens").GetInt64());
            Assert.Equal(9, r.GetProperty("requests_per_replica").EnumerateArray().Sum(n => n.GetInt32()));
            Assert.Equal(replicas, r.GetProperty("requests_per_replica").GetArrayLength());
            Assert.InRange(r.GetProperty("prefix_hit_rate").GetDouble(), 0, 1);
        }
        // Each user's later turns find their history on the replica the router keeps them on.
        Assert.True(json.GetProperty("prefix").GetProperty("prefix_hit_rate").GetDouble() > 0.3, stdout.ToString());
    }

    [Theory]
    // docs/benchmarks.md's sweep: 24 users, conversations near 750 tokens on average over their turns, of `tiny` F32 KV
    // (13,824 B a token): 8 a replica, 47 blocks of 16 each: 83,165,184 bytes, 79.3 MiB, so 80.
    [InlineData(24, 3, 750, 16, 13_824L, 80L)]
    // 25 users: 9 a replica (rounded up, not down).
    [InlineData(25, 3, 750, 16, 13_824L, 90L)]
    // Five replicas: 5 users each of 24 (rounded up), 47 blocks of 16 each: 51,978,240 bytes, 49.6 MiB, so 50.
    [InlineData(24, 5, 750, 16, 13_824L, 50L)]
    // A partial last block counts whole: 17 tokens are two blocks of 16.
    [InlineData(3, 3, 17, 16, 1L << 15, 1L)]
    [InlineData(3, 3, 17, 16, 1L << 16, 2L)]
    public void AReplicasShareIsItsConversationsInWholeBlocksRoundedUpToMiB(int users, int replicas, int conversationTokens, int blockSize, long bytesPerToken, long expectedMiB)
        => Assert.Equal(expectedMiB, RouterScenario.ShareMiB(users, replicas, conversationTokens, blockSize, bytesPerToken));
}
