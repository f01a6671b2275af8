using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>
/// usage.prompt_tokens_details.cached_tokens counts exactly the prompt tokens the prefix cache served: every position
/// an earlier request computed that the prompt shares, whole blocks of 16 and the leading rows of the next, short of
/// the last prompt token (whose logits must be computed); and a cache_salt keeps tenants apart. Prompts are token ids
/// so the arithmetic is exact; each test starts its prompts with its own token (not BOS, which every prompt would
/// share a row of) so the tests never hit each other's blocks.
/// </summary>
public class PrefixCacheTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const int BlockSize = 16;

    /// <summary>A token that tells the tests apart, then <paramref name="length"/> - 1 ordinary tokens.</summary>
    private static int[] Prompt(int first, int length) => [first, .. Enumerable.Range(0, length - 1).Select(i => 300 + i % 150)];

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
        // The first request computed 37 positions: blocks 0 and 1 are full and published, block 2's 5 rows its tail.
        int[] longer = [.. first, .. Enumerable.Range(0, 13).Select(i => 200 + i)];
        Assert.Equal(37, await CachedTokens(longer));
        // That one computed 50 positions; the same prompt again adopts all but its last token, 3 blocks and 1 row.
        Assert.Equal(longer.Length - 1, await CachedTokens(longer, stream: true));
        Assert.Equal(3 * BlockSize + 1, longer.Length - 1);
        // A prompt that leaves it inside a block takes the rows before the first token that differs.
        int[] branch = [.. longer[..40], 7, 7, 7];
        Assert.Equal(40, await CachedTokens(branch));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task DifferentSaltsNeverShareBlocks()
    {
        var prompt = Prompt(401, 40);
        Assert.Equal(0, await CachedTokens(prompt, salt: "tenant-a"));
        Assert.Equal(0, await CachedTokens(prompt, salt: "tenant-b"));
        Assert.Equal(0, await CachedTokens(prompt));            // no salt is a tenant of its own
        Assert.Equal(39, await CachedTokens(prompt, salt: "tenant-a"));
        Assert.Equal(39, await CachedTokens(prompt, salt: "tenant-b"));
        Assert.Equal(39, await CachedTokens(prompt));
        await server.WaitForNoBlocksAsync();
    }
}
