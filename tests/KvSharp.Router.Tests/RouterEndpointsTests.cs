using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Router.Tests;

/// <summary>The paths that are not generation: forwarded to any replica, the router's own, and everything else.</summary>
public class RouterEndpointsTests
{
    [Fact]
    public async Task ModelsAndTokenizeAreForwardedTheRouterAnswersItsOwnAndTheRestIs404()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var rig = await RouterRig.StartAsync(2);
        using (var models = await rig.Client.GetAsync("/v1/models", ct))
        {
            Assert.Equal(HttpStatusCode.OK, models.StatusCode);
            Assert.Contains(models.Headers.GetValues("x-kvsharp-replica").Single(), new[] { rig.Name(0), rig.Name(1) });
            Assert.Equal("list", JsonDocument.Parse(await models.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("object").GetString());
        }
        var (tokens, _) = await rig.PostAsync("/tokenize", new JsonObject { ["content"] = "Once upon a time" }, ct);
        Assert.True(tokens.GetProperty("tokens").GetArrayLength() > 0);

        var health = JsonDocument.Parse(await rig.Client.GetStringAsync("/health", ct)).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal(2, health.GetProperty("healthy_replicas").GetInt32());

        await rig.PostAsync("/v1/completions", new JsonObject { ["prompt"] = "Once upon a time", ["max_tokens"] = 2 }, ct);
        var replicas = JsonDocument.Parse(await rig.Client.GetStringAsync("/router/replicas", ct)).RootElement.GetProperty("replicas");
        Assert.Equal(3, replicas.EnumerateArray().Sum(r => r.GetProperty("requests").GetInt64())); // models, tokenize, completion
        Assert.Contains("kvsharp_router_requests", await rig.Client.GetStringAsync("/metrics", ct));

        using var missing = await rig.Client.GetAsync("/v2/whatever", ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("not_found", JsonDocument.Parse(await missing.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("error").GetProperty("code").GetString());
    }
}
