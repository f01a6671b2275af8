using System.Text.Json.Nodes;

namespace KvSharp.Router.Tests;

/// <summary>
/// The point of the router: each turn of a conversation goes to the replica that served its earlier turns, where the
/// conversation's prefix is cached; and the prefix cache proves it, since the replica serves the earlier turns'
/// blocks from cache (usage.prompt_tokens_details.cached_tokens).
/// </summary>
public class ConversationAffinityTests
{
    [Fact]
    public async Task EveryTurnOfAConversationLandsOnTheSameReplicaAndHitsItsPrefixCache()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var rig = await RouterRig.StartAsync(3);
        for (int c = 0; c < 5; c++)
        {
            var messages = new JsonArray
            {
                new JsonObject { ["role"] = "system", ["content"] = $"Story {c}: Lily and Tom went to the park {c} times. They saw a big dog and a small cat. The sun was warm." },
            };
            var replicas = new HashSet<string>();
            for (int turn = 0; turn < 3; turn++)
            {
                messages.Add(new JsonObject { ["role"] = "user", ["content"] = $"Tell me what happened next, part {turn}." });
                var body = new JsonObject { ["messages"] = messages.DeepClone(), ["max_tokens"] = 8, ["temperature"] = 0 };
                var (response, replica) = await rig.PostAsync("/v1/chat/completions", body, ct);
                replicas.Add(replica);
                var usage = response.GetProperty("usage");
                if (turn > 0)
                    Assert.True(usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32() > 0,
                        $"conversation {c} turn {turn} on {replica} found none of its earlier turns cached: {usage}");
                string reply = response.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
                messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = reply });
            }
            Assert.True(replicas.Count == 1, $"conversation {c} was served by {string.Join(", ", replicas)}");
            Assert.Contains(replicas.Single(), Enumerable.Range(0, 3).Select(rig.Name));
        }
    }

    [Fact]
    public async Task RoundRobinSpreadsTheTurnsOverTheReplicas()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var rig = await RouterRig.StartAsync(3, o => o with { Policy = Routing.RoutingPolicy.RoundRobin });
        var replicas = new HashSet<string>();
        for (int i = 0; i < 3; i++)
            replicas.Add((await rig.PostAsync("/v1/completions", new JsonObject { ["prompt"] = "Once upon a time", ["max_tokens"] = 2 }, ct)).Replica);
        Assert.Equal(3, replicas.Count);
    }
}
