using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>
/// usage.prompt_tokens_details.cached_tokens counts exactly the prompt tokens the prefix cache served: whole blocks
/// of 16 that an earlier request computed, short of the last prompt token (whose logits must be computed); and a
/// cache_salt keeps tenants apart. Prompts are token ids so the block arithmetic is exact; each test starts its
/// prompts with its own token so the tests never hit each other's blocks.
/// </summary>
public class PrefixCacheTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const int BlockSize = 16;

    /// <summary>BOS, a token that tells the tests apart, then <paramref name="length"/> - 2 ordinary tokens.</summary>
    private static int[] Prompt(int first, int length) => [1, first, .. Enumerable.Range(0, length - 2).Select(i => 300 + i % 150)];

    private async Task<int> CachedTokens(int[] prompt, string? salt = null, bool stream = false)
    {
        var body = new JsonObject
        {
            ["prompt"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
            ["max_tokens"] = 1, // the sampled token is never run through the model: only the prompt fills blocks
            ["temperature"] = 0,
        };
        if (salt != null) body["cache_salt"] = salt;
        var ct = TestContext.Current.CancellationToken;
        var usage = stream
            ? await StreamedUsage(body, ct)
            : (await server.CompleteAsync(body, ct)).GetProperty("usage");
        Assert.Equal(prompt.Length, usage.GetProperty("prompt_tokens").GetInt32());
        return usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
    }

    private async Task<System.Text.Json.JsonElement> StreamedUsage(JsonObject body, CancellationToken ct)
    {
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        return (await server.StreamAsync(body, ct))[^1].GetProperty("usage");
    }

    [Fact]
    public async Task ASecondRequestSharingAPrefixReportsExactlyTheCachedBlocks()
    {
        var first = Prompt(400, 37);
        Assert.Equal(0, await CachedTokens(first));
        // The first request computed 37 positions: blocks 0 and 1 are full and published, block 2 is partial.
        int[] longer = [.. first, .. Enumerable.Range(0, 13).Select(i => 200 + i)];
        Assert.Equal(2 * BlockSize, await CachedTokens(longer));
        // That one computed 50 positions (3 full blocks); the same prompt again adopts all but the last token's block.
        Assert.Equal((longer.Length - 1) / BlockSize * BlockSize, await CachedTokens(longer, stream: true));
        Assert.Equal(48, (longer.Length - 1) / BlockSize * BlockSize);
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task DifferentSaltsNeverShareBlocks()
    {
        var prompt = Prompt(401, 40);
        Assert.Equal(0, await CachedTokens(prompt, salt: "tenant-a"));
        Assert.Equal(0, await CachedTokens(prompt, salt: "tenant-b"));
        Assert.Equal(0, await CachedTokens(prompt));            // no salt is a tenant of its own
        Assert.Equal(32, await CachedTokens(prompt, salt: "tenant-a"));
        Assert.Equal(32, await CachedTokens(prompt, salt: "tenant-b"));
        Assert.Equal(32, await CachedTokens(prompt));
        await server.WaitForNoBlocksAsync();
    }
}
