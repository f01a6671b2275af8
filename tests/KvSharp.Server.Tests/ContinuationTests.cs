using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Server.Continuations;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Server.Tests;

/// <summary>
/// A completion that names the one it continues ("continues"): its prompt is that request's prompt ids, the ids it
/// generated, then the rest of the text tokenized as a continuation; every position the first request computed is a
/// prefix hit, and the logits are those of computing the same ids cold.
/// </summary>
public class ContinuationTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Opening = "Lily and Ben went to the park. They saw a big dog";

    private async Task<(JsonElement Body, string? Continued)> CompleteAsync(JsonObject body, HttpStatusCode status = HttpStatusCode.OK)
    {
        var ct = TestContext.Current.CancellationToken;
        using var response = await server.Client.PostAsync("/v1/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), ct);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.Clone();
        Assert.True(response.StatusCode == status, $"{response.StatusCode}: {json}");
        return (json, response.Headers.TryGetValues(PromptContinuation.ContinuedHeader, out var v) ? v.Single() : null);
    }

    private static JsonObject Greedy(JsonNode prompt, int maxTokens, string? continues = null, string? salt = null)
    {
        var body = new JsonObject { ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["logprobs"] = 3 };
        if (continues != null) body["continues"] = continues;
        if (salt != null) body["cache_salt"] = salt;
        return body;
    }

    private static int Usage(JsonElement body, string field) => field == "cached"
        ? body.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32()
        : body.GetProperty("usage").GetProperty(field).GetInt32();

    /// <summary>What the model generates for <paramref name="prompt"/>, greedily, as ids (the reference engine's).</summary>
    private int[] Generated(int[] prompt, int maxTokens)
    {
        using var engine = new LlmEngine(server.ReferenceModel, new EngineOptions { ContextLength = 512, BlockCount = 64 });
        var handle = engine.Submit(new EngineRequest { PromptTokens = prompt, Options = new GenerationOptions { MaxTokens = maxTokens, Sampling = SamplingOptions.Greedy } });
        engine.RunUntilIdle();
        return [.. handle.OutputTokens[0]];
    }

    [Fact]
    public async Task ANextTurnUsesTheGeneratedIdsAndGivesTheLogitsOfAColdPrefill()
    {
        var tokenizer = server.ReferenceModel.Tokenizer;
        var (first, none) = await CompleteAsync(Greedy(Opening, 12));
        Assert.Null(none); // no header unless the request continues one
        string reply = ServerFixture.Text(first), more = "\nThen they ran home.";
        int[] ids = [.. tokenizer.Encode(Opening, true, true), .. Generated(tokenizer.Encode(Opening, true, true), 12), .. tokenizer.EncodeContinuation(more, true)];
        Assert.Equal(Opening + reply + more, tokenizer.Decode(ids)); // the ids spell the text the client sent

        string prompt = Opening + reply + more;
        var (next, continued) = await CompleteAsync(Greedy(prompt, 8, continues: first.GetProperty("id").GetString()));
        int kept = ids.Length - tokenizer.EncodeContinuation(more, true).Length;
        Assert.Equal(kept.ToString(), continued);
        Assert.Equal(ids.Length, Usage(next, "prompt_tokens"));
        // Every position the first request computed: its prompt and reply but the last sampled token.
        Assert.Equal(kept - 1, Usage(next, "cached"));

        // The same ids under another tenant's salt share nothing: a cold prefill, with the same tokens and logprobs.
        var (cold, _) = await CompleteAsync(Greedy(new JsonArray(ids.Select(t => (JsonNode)t).ToArray()), 8, salt: "cold"));
        Assert.Equal(0, Usage(cold, "cached"));
        Assert.Equal(ServerFixture.Text(cold), ServerFixture.Text(next));
        Assert.Equal(ServerFixture.Choice(cold, 0).GetProperty("logprobs").GetRawText(), ServerFixture.Choice(next, 0).GetProperty("logprobs").GetRawText());

        // The continued turn is kept in turn: a third continues the second.
        var (third, again) = await CompleteAsync(Greedy(prompt + ServerFixture.Text(next) + " The end", 4, continues: next.GetProperty("id").GetString()));
        Assert.Equal((ids.Length + 8).ToString(), again);
        Assert.Equal(ids.Length + 8 - 1, Usage(third, "cached"));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task AnUnknownCompletionIsTokenizedWholeAndAnotherConversationIsRefused()
    {
        var tokenizer = server.ReferenceModel.Tokenizer;
        string prompt = "Tom had a little red car. He";
        var (unknown, continued) = await CompleteAsync(Greedy(prompt, 2, continues: "cmpl-not-on-this-server"));
        Assert.Equal("0", continued);
        Assert.Equal(tokenizer.Encode(prompt, true, true).Length, Usage(unknown, "prompt_tokens"));

        var (other, _) = await CompleteAsync(Greedy("Once upon a time", 2, continues: unknown.GetProperty("id").GetString()), HttpStatusCode.BadRequest);
        Assert.Equal("continues", other.GetProperty("error").GetProperty("param").GetString());
        var (ids, _) = await CompleteAsync(Greedy(new JsonArray(1, 2, 3), 2, continues: unknown.GetProperty("id").GetString()), HttpStatusCode.BadRequest);
        Assert.Contains("text prompt", ids.GetProperty("error").GetProperty("message").GetString());
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task AReplyCutByAStopStringKeepsTheIdsBeforeTheCut()
    {
        // A story of its own: the other tests' cached replies would match past the cut.
        const string Story = "Sue had a small red ball. She";
        var tokenizer = server.ReferenceModel.Tokenizer;
        var cut = Greedy(Story, 30);
        cut["stop"] = ".";
        var (first, _) = await CompleteAsync(cut);
        Assert.Equal("stop", ServerFixture.Choice(first, 0).GetProperty("finish_reason").GetString());
        string reply = ServerFixture.Text(first);
        int[] prompt = tokenizer.Encode(Story, true, true), generated = Generated(prompt, 30);
        // The generated ids whose text is the reply's: those before the one that spelled the stop string.
        int before = Enumerable.Range(0, generated.Length + 1)
            .Last(n => (Story + reply).StartsWith(tokenizer.Decode([.. prompt, .. generated.Take(n)]), StringComparison.Ordinal));
        var (next, continued) = await CompleteAsync(Greedy(Story + reply + ". More", 2, continues: first.GetProperty("id").GetString()));
        Assert.Equal((prompt.Length + before).ToString(), continued);
        Assert.True(before > 0, "the reply had text before the stop string");
        // All of them were computed (the token that spelled the stop string was the last sampled, never run).
        Assert.Equal(prompt.Length + before, Usage(next, "cached"));
        await server.WaitForNoBlocksAsync();
    }
    private async Task<(JsonElement Body, string? Continued)> ChatAsync(IEnumerable<TemplateMessage> messages, int maxTokens, string? continues = null,
        JsonObject? logitBias = null)
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()),
            ["max_tokens"] = maxTokens, ["temperature"] = 0,
        };
        if (continues != null) body["continues"] = continues;
        if (logitBias != null) body["logit_bias"] = logitBias.DeepClone();
        var ct = TestContext.Current.CancellationToken;
        using var response = await server.Client.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), ct);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.Clone();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {json}");
        return (json, response.Headers.TryGetValues(PromptContinuation.ContinuedHeader, out var v) ? v.Single() : null);
    }

    private static string Reply(JsonElement chat) => ServerFixture.Choice(chat, 0).GetProperty("message").GetProperty("content").GetString()!;

    [Fact]
    public async Task AChatTurnContinuesThePreviousReplysIdsAndGivesWhatThoseIdsGiveCold()
    {
        var tokenizer = server.ReferenceModel.Tokenizer;
        var template = server.Server.ChatTemplate;
        TemplateMessage[] turn1 = [new("user", "Tell me a story about a red ball.")];
        var (first, none) = await ChatAsync(turn1, 10);
        Assert.Null(none);
        Assert.Equal("length", ServerFixture.Choice(first, 0).GetProperty("finish_reason").GetString()); // every generated id spells the reply
        string reply = Reply(first);
        TemplateMessage[] turn2 = [.. turn1, new("assistant", reply), new("user", "What happened next?")];
        var rendered1 = template.Render(turn1, addGenerationPrompt: true, tokenizer);
        var rendered2 = template.Render(turn2, addGenerationPrompt: true, tokenizer);
        Assert.StartsWith(rendered1.Prompt + reply, rendered2.Prompt);
        int[] prompt1 = rendered1.Tokenize(tokenizer);
        int[] ids = [.. prompt1, .. Generated(prompt1, 10), .. rendered2.TokenizeFrom(tokenizer, (rendered1.Prompt + reply).Length)];

        var (next, continued) = await ChatAsync(turn2, 6, continues: first.GetProperty("id").GetString());
        Assert.Equal((prompt1.Length + 10).ToString(), continued);
        Assert.Equal(ids.Length, Usage(next, "prompt_tokens"));
        Assert.Equal(prompt1.Length + 10 - 1, Usage(next, "cached"));
        // The same ids computed cold (another tenant's salt, the template's stop strings) give the same reply.
        var cold = Greedy(new JsonArray(ids.Select(t => (JsonNode)t).ToArray()), 6, salt: "cold-chat");
        cold["stop"] = new JsonArray(template.StopStrings.Select(x => (JsonNode)x).ToArray());
        var (coldBody, _) = await CompleteAsync(cold);
        Assert.Equal(0, Usage(coldBody, "cached"));
        Assert.Equal(ServerFixture.Text(coldBody), Reply(next));

        // A conversation whose reply was edited keeps the earlier prompt's ids, and the reply's as far as the edit agrees
        // with it (here at most its first token, a space), and tokenizes the rest from that token's end.
        TemplateMessage[] edited = [.. turn1, new("assistant", "Something else."), new("user", "What happened next?")];
        var renderedEdit = template.Render(edited, addGenerationPrompt: true, tokenizer);
        var (whole, keptHeader) = await ChatAsync(edited, 2, continues: first.GetProperty("id").GetString());
        int kept = int.Parse(keptHeader!) - prompt1.Length;
        Assert.InRange(kept, 0, 1);
        string keptText = string.Concat(ids.Skip(prompt1.Length).Take(kept).Select(t => Encoding.UTF8.GetString(tokenizer.TokenPiece(t))));
        Assert.StartsWith(rendered1.Prompt + keptText, renderedEdit.Prompt);
        Assert.Equal(prompt1.Length + kept + renderedEdit.TokenizeFrom(tokenizer, (rendered1.Prompt + keptText).Length).Length, Usage(whole, "prompt_tokens"));
        // One that parts within the earlier prompt itself is tokenized whole.
        TemplateMessage[] other = [new("user", "Tell me a story about a blue car."), new("assistant", reply), new("user", "What happened next?")];
        var (fresh, zero) = await ChatAsync(other, 2, continues: first.GetProperty("id").GetString());
        Assert.Equal("0", zero);
        Assert.Equal(template.Render(other, addGenerationPrompt: true, tokenizer).Tokenize(tokenizer).Length, Usage(fresh, "prompt_tokens"));
        var (_, unknown) = await ChatAsync(turn2, 2, continues: "chatcmpl-not-on-this-server");
        Assert.Equal("0", unknown);
        await server.WaitForNoBlocksAsync();
    }

    /// <summary>
    /// Replies the template renders trimmed (the fallback template trims a turn's content, and these end in newlines):
    /// each next turn still keeps the earlier request's prompt ids, so a conversation stays on the ids its cache holds
    /// turn after turn instead of being tokenized whole every other turn.
    /// </summary>
    [Fact]
    public async Task RepliesTheTemplateTrimsStillLeaveTheirPromptsIdsToTheNextTurn()
    {
        var tokenizer = server.ReferenceModel.Tokenizer;
        int newline = Enumerable.Range(0, server.ReferenceModel.Config.VocabSize).First(t => tokenizer.TokenPiece(t).SequenceEqual("\n"u8));
        var bias = new JsonObject { [newline.ToString()] = 100 };
        var messages = new List<TemplateMessage> { new("user", "Tell me about a dog.") };
        string? previous = null;
        int previousPrompt = 0;
        for (int turn = 0; turn < 3; turn++)
        {
            var (body, continued) = await ChatAsync(messages, 3, previous, bias);
            string reply = Reply(body);
            Assert.Equal("\n\n\n", reply);
            if (turn > 0)
            {
                // The earlier prompt's ids, whole (the reply's newlines are where the renderings part).
                Assert.Equal(previousPrompt.ToString(), continued);
                // And all of it is in the cache (the earlier request ran its last prompt token too).
                Assert.Equal(previousPrompt, Usage(body, "cached"));
            }
            Assert.DoesNotContain(reply, server.Server.ChatTemplate.Render([.. messages, new("assistant", reply), new("user", "x")], addGenerationPrompt: true, tokenizer).Prompt[^20..]);
            previous = body.GetProperty("id").GetString();
            previousPrompt = Usage(body, "prompt_tokens");
            messages.Add(new("assistant", reply));
            messages.Add(new("user", $"And then, part {turn}?"));
        }
        await server.WaitForNoBlocksAsync();
    }
}
