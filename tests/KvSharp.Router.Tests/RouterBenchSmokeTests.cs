using System.Text.Json;
using KvSharp.Cli.Bench;

namespace KvSharp.Router.Tests;

/// <summary>`kvsharp bench --scenario router` runs end to end on a tiny workload and reports both policies (a smoke test: no timing is checked).</summary>
public class RouterBenchSmokeTests
{
    [Fact]
    public void TheRouterScenarioReportsHitRatesForBothPolicies()
    {
        var stdout = new StringWriter();
        int exit = BenchRunner.Run(new BenchSettings
        {
            Scenario = BenchScenario.Router,
            ModelPath = RouterRig.ModelPath,
            ContextLength = 1024,
            Users = 3,
            Turns = 3,
            PromptTokens = 24,
            GenTokens = 4,
            Threads = 3,
            KvBudgetMiB = 4,
            Json = true,
            MeasureBandwidth = false,
        }, stdout, new StringWriter());
        Assert.Equal(0, exit);
        var json = JsonDocument.Parse(stdout.ToString()).RootElement;
        Assert.Equal("router", json.GetProperty("scenario").GetString());
        foreach (string policy in new[] { "prefix", "round_robin" })
        {
            var r = json.GetProperty(policy);
            Assert.Equal(9, r.GetProperty("requests").GetInt32());
            Assert.Equal(9 * 4, r.GetProperty("completion_tokens").GetInt64());
            Assert.Equal(9, r.GetProperty("requests_per_replica").EnumerateArray().Sum(n => n.GetInt32()));
            Assert.InRange(r.GetProperty("prefix_hit_rate").GetDouble(), 0, 1);
        }
        // Each user's later turns find their history on the replica the router keeps them on.
        Assert.True(json.GetProperty("prefix").GetProperty("prefix_hit_rate").GetDouble() > 0.3, stdout.ToString());
    }
}
