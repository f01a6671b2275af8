using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Router.Tests;

/// <summary>
/// The Responses API behind the router: a stored response lives on the replica that made it, so each turn that
/// continues it (previous_response_id), and each read or delete of it, goes there: its id carries the replica's tag.
/// The continued turns find their history in that replica's prefix cache.
/// </summary>
public class ResponsesRoutingTests
{
    [Fact]
    public async Task EachTurnThatContinuesAResponseGoesToTheReplicaThatStoredIt()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var rig = await RouterRig.StartAsync(3);
        var used = new HashSet<string>();
        for (int c = 0; c < 6; c++)
        {
            string? previous = null;
            var replicas = new HashSet<string>();
            for (int turn = 0; turn < 3; turn++)
            {
                var body = new JsonObject
                {
                    ["instructions"] = $"Story {c}: Lily and Tom went to the park {c} times.",
                    ["input"] = $"Tell me what happened next, part {turn}.", ["max_output_tokens"] = 6, ["temperature"] = 0,
                };
                if (previous != null) body["previous_response_id"] = previous;
                var (response, replica) = await rig.PostAsync("/v1/responses", body, ct);
                replicas.Add(replica);
                if (turn > 0)
                    Assert.True(response.GetProperty("usage").GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32() > 0,
                        $"conversation {c} turn {turn} on {replica} found none of its history cached");
                previous = response.GetProperty("id").GetString();
            }
            Assert.True(replicas.Count == 1, $"conversation {c} was served by {string.Join(", ", replicas)}");
            used.Add(replicas.Single());

            // Read back and deleted through the router, on the replica that holds it.
            using (var read = await rig.Client.GetAsync($"/v1/responses/{previous}", ct))
            {
                Assert.Equal(HttpStatusCode.OK, read.StatusCode);
                Assert.Equal(replicas.Single(), read.Headers.GetValues("x-kvsharp-replica").Single());
                Assert.Equal(previous, JsonDocument.Parse(await read.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("id").GetString());
            }
            // Its input items too, with the query: the three turns' inputs and the first two outputs, oldest first.
            using (var items = await rig.Client.GetAsync($"/v1/responses/{previous}/input_items?order=asc", ct))
            {
                Assert.Equal(HttpStatusCode.OK, items.StatusCode);
                Assert.Equal(replicas.Single(), items.Headers.GetValues("x-kvsharp-replica").Single());
                var data = JsonDocument.Parse(await items.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("data");
                Assert.Equal(["user", "assistant", "user", "assistant", "user"], data.EnumerateArray().Select(i => i.GetProperty("role").GetString()));
            }
            using (var deleted = await rig.Client.DeleteAsync($"/v1/responses/{previous}", ct)) Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
            using (var gone = await rig.Client.GetAsync($"/v1/responses/{previous}", ct)) Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }
        Assert.True(used.Count > 1, "every conversation went to one replica");

        // An id no replica of this router made is the router's own 404.
        using var unknown = await rig.Client.GetAsync("/v1/responses/resp_0123abcd_x", ct);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.False(unknown.Headers.Contains("x-kvsharp-replica"));
    }
}
