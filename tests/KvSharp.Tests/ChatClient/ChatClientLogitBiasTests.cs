using KvSharp.Engine;
using KvSharp.Extensions.AI;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// KvSharpChatClient takes a logit bias as ChatOptions.AdditionalProperties["logit_bias"] (OpenAI's name; M.E.AI has
/// no field for it): ids as numbers or decimal strings, numeric biases; anything else is refused by name.
/// </summary>
public class ChatClientLogitBiasTests
{
    [Fact]
    public async Task ALargeBiasRepeatsItsTokenAndABanKeepsATokenOut()
    {
        var ct = TestContext.Current.CancellationToken;
        using var llm = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var client = new KvSharpChatClient(llm);
        AIChatMessage[] messages = [new(ChatRole.User, "Tell me about a cat")];
        int forced = llm.Tokenizer.Encode(" cat", addSpecial: false, parseSpecial: false)[^1];

        var forcing = new ChatOptions { MaxOutputTokens = 6, AdditionalProperties = new() { ["logit_bias"] = new Dictionary<int, int> { [forced] = 100 } } };
        var reply = await client.GetResponseAsync(messages, forcing, ct);
        Assert.Equal(llm.Tokenizer.Decode(Enumerable.Repeat(forced, 6).ToArray()).Trim(), reply.Text.Trim());

        // The unbiased reply's tokens, then the same request with each of them ruled out (string keys, double values).
        var plain = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 6 }, ct);
        var seen = llm.Tokenizer.Encode(plain.Text, addSpecial: false, parseSpecial: false);
        var banning = new ChatOptions
        {
            MaxOutputTokens = 6,
            AdditionalProperties = new() { ["logit_bias"] = seen.Distinct().ToDictionary(t => t.ToString(), _ => -100.0) },
        };
        var banned = await client.GetResponseAsync(messages, banning, ct);
        Assert.NotEqual(plain.Text, banned.Text);
    }

    [Fact]
    public async Task ABadBiasIsRefusedByName()
    {
        using var llm = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        using var client = new KvSharpChatClient(llm);
        AIChatMessage[] messages = [new(ChatRole.User, "Hi")];
        foreach (object bad in new object[] { "5:100", new Dictionary<string, int> { ["five"] = 1 }, new Dictionary<int, string> { [5] = "ban" } })
        {
            var e = await Assert.ThrowsAsync<ArgumentException>(() =>
                client.GetResponseAsync(messages, new ChatOptions { AdditionalProperties = new() { ["logit_bias"] = bad } }, TestContext.Current.CancellationToken));
            Assert.Contains("logit_bias", e.Message);
        }
        var outside = await Assert.ThrowsAsync<ArgumentException>(() =>
            client.GetResponseAsync(messages, new ChatOptions { AdditionalProperties = new() { ["logit_bias"] = new Dictionary<int, int> { [600] = 1 } } }, TestContext.Current.CancellationToken));
        Assert.Contains("token 600", outside.Message);
    }
}
