using System.Text;
using KvSharp.Router.Affinity;

namespace KvSharp.Router.Tests;

/// <summary>The affinity key alone: what makes two prompts share a chain, and how the ring spreads and moves keys.</summary>
public class AffinityKeyTests
{
    private static ulong[] Chain(string json, int blockChars = 8)
    {
        var hashes = new ulong[64];
        int n = PrefixChain.Compute(PromptText.Parse(Encoding.UTF8.GetBytes(json)), blockChars, hashes);
        return hashes[..n];
    }

    [Fact]
    public void ALaterTurnExtendsTheChainOfTheEarlierOne()
    {
        var turn1 = Chain("""{"messages":[{"role":"system","content":"You are a storyteller."},{"role":"user","content":"Tell me about Lily."}]}""");
        var turn2 = Chain("""{"messages":[{"role":"system","content":"You are a storyteller."},{"role":"user","content":"Tell me about Lily."},{"role":"assistant","content":"Lily had a dog."},{"role":"user","content":"And then?"}]}""");
        Assert.True(turn2.Length > turn1.Length);
        Assert.Equal(turn1, turn2[..turn1.Length]);
    }

    [Fact]
    public void SaltRoleAndContentEachChangeTheChain()
    {
        const string body = """{"messages":[{"role":"user","content":"Tell me a story about a cat."}]}""";
        var plain = Chain(body);
        Assert.NotEqual(plain[0], Chain(body.Replace("}]}", "}],\"cache_salt\":\"tenant-a\"}"))[0]);
        Assert.NotEqual(plain[0], Chain(body.Replace("\"user\"", "\"system\""))[0]);
        Assert.NotEqual(plain[^1], Chain(body.Replace("cat", "dog"))[^1]);
        // Array content (text parts) keys like the same text as a string.
        Assert.Equal(plain, Chain("""{"messages":[{"role":"user","content":[{"type":"text","text":"Tell me a story "},{"type":"text","text":"about a cat."}]}]}"""));
    }

    [Fact]
    public void CompletionPromptsKeyByTextOrTokenIdsAndShortOrBadBodiesStillGetAKey()
    {
        Assert.Equal(Chain("""{"prompt":"Once upon a time, there was"}"""), Chain("""{"prompt":["Once upon a time, there was","other"]}"""));
        Assert.NotEqual(Chain("""{"prompt":[1,2,3,4,5,6]}""")[0], Chain("""{"prompt":[7,2,3,4,5,6]}""")[0]);
        Assert.Single(Chain("""{"prompt":"Hi"}"""));
        Assert.NotEqual(Chain("""{"prompt":"Hi"}""")[0], Chain("""{"prompt":"Ho"}""")[0]);
        Assert.Single(Chain("not json"));
    }

    [Fact]
    public void AResponsesInputKeysByItsInstructionsAndItemsAsMessagesDo()
    {
        var first = Chain("""{"instructions":"You are a storyteller.","input":"Tell me about Lily."}""");
        Assert.Equal(first, Chain("""{"instructions":"You are a storyteller.","input":[{"role":"user","content":[{"type":"input_text","text":"Tell me about Lily."}]}]}"""));
        Assert.Equal(first, Chain("""{"messages":[{"role":"system","content":"You are a storyteller."},{"role":"user","content":"Tell me about Lily."}]}"""));
        Assert.NotEqual(first, Chain("""{"instructions":"You are a storyteller.","input":"Tell me about Tom, please."}"""));
        Assert.Equal("resp_ab12_x", PromptText.Parse(Encoding.UTF8.GetBytes("""{"input":"x","previous_response_id":"resp_ab12_x"}""")).PreviousResponseId);
        Assert.Null(PromptText.Parse(Encoding.UTF8.GetBytes("not json")).PreviousResponseId);
    }

    [Fact]
    public void TheRingSpreadsKeysEvenlyAndTakingAReplicaOutMovesOnlyItsKeys()
    {
        var names = new[] { "http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080" };
        var ring = new HashRing(names);
        var counts = new int[3];
        Span<int> order = stackalloc int[3];
        var owners = new int[3000];
        for (int k = 0; k < owners.Length; k++)
        {
            ulong key = KvSharp.Cache.Paged.PrefixHasher.Hash(7, [k]);
            Assert.Equal(3, ring.Walk(key, order));
            Assert.Equal(3, order.ToArray().Distinct().Count());
            owners[k] = order[0];
            counts[order[0]]++;
            // With replica 1 out, a key goes to the first replica after it on its walk: keys of 0 and 2 never move.
            int withoutOne = order[0] != 1 ? order[0] : order[1];
            if (owners[k] != 1) Assert.Equal(owners[k], withoutOne);
        }
        foreach (int c in counts) Assert.InRange(c, 800, 1200);
    }
}
