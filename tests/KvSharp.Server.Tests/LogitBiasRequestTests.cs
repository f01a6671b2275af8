using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Sampling;
using OpenAI.Chat;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Server.Tests;

/// <summary>
/// logit_bias on /v1/completions and /v1/chat/completions (OpenAI's object from token ids to [-100, 100]) reaches the
/// sampler: a reply equals the library's with the same LogitBias, differs from the unbiased one, and the OpenAI SDK's
/// LogitBiases set it. (Refusals are in <see cref="BadRequestTests"/>.)
/// </summary>
public class LogitBiasRequestTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Prompt = "Once upon a time";

    [Fact]
    public async Task ACompletionWithLogitBiasEqualsTheLibrarysAndDiffersFromTheUnbiasedOne()
    {
        var ct = TestContext.Current.CancellationToken;
        var plain = server.Reference(Prompt, new GenerationOptions { MaxTokens = 20 });
        int first = plain.Tokens[0], second = plain.Tokens[1];
        // -100 for the greedy first token (as good as a ban), +3 for the one after it.
        var bias = new Dictionary<int, float> { [first] = -100f, [second] = 3f };
        string expected = server.Reference(Prompt, new GenerationOptions { MaxTokens = 20, Sampling = SamplingOptions.Greedy with { LogitBias = bias } }).Text;

        var body = new JsonObject
        {
            ["prompt"] = Prompt, ["max_tokens"] = 20, ["temperature"] = 0,
            ["logit_bias"] = new JsonObject { [$"{first}"] = -100, [$"{second}"] = 3 },
        };
        string biased = ServerFixture.Text(await server.CompleteAsync(body, ct));
        Assert.Equal(expected, biased);
        body.Remove("logit_bias");
        Assert.NotEqual(biased, ServerFixture.Text(await server.CompleteAsync(body, ct)));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task TheOpenAiSdksLogitBiasesForceAToken()
    {
        var ct = TestContext.Current.CancellationToken;
        var model = server.ReferenceModel;
        var plain = ChatReference.Greedy(model, [TemplateMessage.User("Tell me a story.")], 8);
        int forced = model.Tokenizer.Encode(" cat", addSpecial: false, parseSpecial: false)[^1];
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
        options.LogitBiases[forced] = 100;
        ChatCompletion reply = await ChatReference.SdkClient(server).CompleteChatAsync([new UserChatMessage("Tell me a story.")], options, ct);
        string eight = model.Tokenizer.Decode(Enumerable.Repeat(forced, 8).ToArray());
        Assert.Equal(eight.Trim(), reply.Content[0].Text.Trim());
        Assert.NotEqual(plain.Text, reply.Content[0].Text);
        Assert.Equal(8, reply.Usage.OutputTokenCount);
    }
}
