using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Cache;

namespace KvSharp.Server.Tests;

/// <summary>
/// Scoring prompts over HTTP: OpenAI's echo with logprobs (read as lm-evaluation-harness reads it), max_tokens 0,
/// vLLM's prompt_logprobs on completions and chat, and lists of prompts run at once, whole and streamed; each against
/// the log-softmax of a whole-prompt evaluation by the reference model.
/// </summary>
public class PromptScoringTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Context = "Once upon a time, there was a little girl named Lily.";

    /// <summary>The log-softmax of the reference model's logits before each token of <paramref name="ids"/> (entry 0: NaN, nothing before it).</summary>
    private (double[] Logprobs, bool[] Greedy, int[] Ranks) Reference(int[] ids)
    {
        var model = server.ReferenceModel;
        int vocab = model.Config.VocabSize;
        var logits = model.Evaluate(ids, model.CreateCache(KvCacheMode.Contiguous, 512), allLogits: true);
        var logprobs = new double[ids.Length];
        var greedy = new bool[ids.Length];
        var ranks = new int[ids.Length];
        logprobs[0] = double.NaN;
        for (int p = 1; p < ids.Length; p++)
        {
            var row = logits.AsSpan((p - 1) * vocab, vocab);
            float max = float.NegativeInfinity;
            foreach (float l in row) max = Math.Max(max, l);
            double sum = 0;
            foreach (float l in row) sum += Math.Exp(l - max);
            float own = row[ids[p]];
            logprobs[p] = own - max - Math.Log(sum);
            greedy[p] = own == max;
            int above = 0;
            foreach (float l in row) if (l > own) above++;
            ranks[p] = above + 1;
        }
        return (logprobs, greedy, ranks);
    }

    private int[] Ids(string text) => server.ReferenceModel.Tokenizer.Encode(text, addSpecial: true, parseSpecial: true);

    /// <summary>A token's own text, as the logprobs name it.</summary>
    private string Piece(int token) => System.Text.Encoding.UTF8.GetString(server.ReferenceModel.Tokenizer.TokenPiece(token, renderSpecial: true));

    private static JsonArray IdArray(int[] ids) => [.. ids.Select(i => (JsonNode)i)];

    [Fact]
    public async Task EchoWithLogprobsGivesWhatLmEvaluationHarnessSumsForAContinuation()
    {
        var ct = TestContext.Current.CancellationToken;
        int[] context = Ids(Context);
        string[] continuations = [" She liked to play.", " Zebra tax over xylophones."];
        int[][] full = [.. continuations.Select(c => (int[])[.. context, .. server.ReferenceModel.Tokenizer.EncodeContinuation(c, parseSpecial: false)])];
        // lm-evaluation-harness's local-completions loglikelihood request: token lists in a batch, echo, one token.
        var body = new JsonObject
        {
            ["model"] = "stories260K.gguf", ["prompt"] = new JsonArray([.. full.Select(IdArray)]), ["temperature"] = 0,
            ["max_tokens"] = 1, ["logprobs"] = 1, ["seed"] = 1234, ["echo"] = true,
        };
        var json = await server.CompleteAsync(body, ct);
        var choices = json.GetProperty("choices").EnumerateArray().OrderBy(c => c.GetProperty("index").GetInt32()).ToArray();
        Assert.Equal(2, choices.Length);
        for (int i = 0; i < 2; i++)
        {
            var lp = choices[i].GetProperty("logprobs");
            var tokenLogprobs = lp.GetProperty("token_logprobs").EnumerateArray().ToArray();
            var top = lp.GetProperty("top_logprobs").EnumerateArray().ToArray();
            // The prompt's tokens, then the one generated.
            Assert.Equal(full[i].Length + 1, tokenLogprobs.Length);
            Assert.Equal(JsonValueKind.Null, tokenLogprobs[0].ValueKind);
            Assert.Equal(JsonValueKind.Null, top[0].ValueKind);
            // What the harness computes: the sum over the continuation, and whether each of its tokens was the likeliest.
            int ctxlen = context.Length;
            double sum = tokenLogprobs[ctxlen..^1].Sum(t => t.GetDouble());
            bool isGreedy = tokenLogprobs[ctxlen..^1].Zip(top[ctxlen..^1]).All(p => p.First.GetDouble() == p.Second.EnumerateObject().Max(a => a.Value.GetDouble()));
            var (expected, greedy, _) = Reference(full[i]);
            Assert.Equal(expected[ctxlen..].Sum(), sum, 1e-3);
            Assert.Equal(greedy[ctxlen..].All(g => g), isGreedy);
            for (int p = 1; p < full[i].Length; p++) Assert.Equal(expected[p], tokenLogprobs[p].GetDouble(), 1e-4);
            // The choice's text starts with the prompt the ids spell.
            Assert.StartsWith(server.ReferenceModel.Tokenizer.Decode(full[i]), choices[i].GetProperty("text").GetString());
        }
        // The likely continuation scores far above the unlikely one.
        Assert.False(Reference(full[1]).Greedy[context.Length..].All(g => g));
    }

    [Fact]
    public async Task MaxTokensZeroWithEchoReturnsThePromptAloneScoredAndAScoredPromptIsNeverACacheHit()
    {
        var ct = TestContext.Current.CancellationToken;
        // The same prompt computed once already: its blocks are cached.
        await server.CompleteAsync(new JsonObject { ["prompt"] = Context, ["max_tokens"] = 2 }, ct);
        var json = await server.CompleteAsync(new JsonObject { ["prompt"] = Context, ["max_tokens"] = 0, ["echo"] = true, ["logprobs"] = 2 }, ct);
        var choice = ServerFixture.Choice(json, 0);
        Assert.Equal(Context, choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = json.GetProperty("usage");
        int[] ids = Ids(Context);
        Assert.Equal((ids.Length, 0, 0), (usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("completion_tokens").GetInt32(),
            usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32()));
        var lp = choice.GetProperty("logprobs");
        var expected = Reference(ids).Logprobs;
        var got = lp.GetProperty("token_logprobs").EnumerateArray().ToArray();
        Assert.Equal(ids.Length, got.Length);
        for (int p = 1; p < ids.Length; p++) Assert.Equal(expected[p], got[p].GetDouble(), 1e-4);
        Assert.All(lp.GetProperty("top_logprobs").EnumerateArray().Skip(1), t => Assert.Equal(2, t.EnumerateObject().Count()));
        Assert.Equal(ids.Select(t => Piece(t)), lp.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));

        // Echo without logprobs and nothing to generate: the prompt's text alone.
        var bare = await server.CompleteAsync(new JsonObject { ["prompt"] = Context, ["max_tokens"] = 0, ["echo"] = true }, ct);
        Assert.Equal(Context, ServerFixture.Text(bare));
        Assert.Equal(JsonValueKind.Null, ServerFixture.Choice(bare, 0).GetProperty("logprobs").ValueKind);
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task PromptLogprobsComeInVllmsShapeOnCompletionsAndChat()
    {
        var ct = TestContext.Current.CancellationToken;
        int[] ids = Ids(Context + " Zebra tax.");
        var json = await server.CompleteAsync(new JsonObject { ["prompt"] = IdArray(ids), ["max_tokens"] = 3, ["temperature"] = 0, ["prompt_logprobs"] = 2 }, ct);
        var choice = ServerFixture.Choice(json, 0);
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        var entries = choice.GetProperty("prompt_logprobs").EnumerateArray().ToArray();
        Assert.Equal(ids.Length, entries.Length);
        Assert.Equal(JsonValueKind.Null, entries[0].ValueKind);
        var (expected, _, ranks) = Reference(ids);
        for (int p = 1; p < ids.Length; p++)
        {
            var own = entries[p].GetProperty(ids[p].ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(expected[p], own.GetProperty("logprob").GetDouble(), 1e-4);
            Assert.Equal(ranks[p], own.GetProperty("rank").GetInt32());
            Assert.Equal(Piece(ids[p]), own.GetProperty("decoded_token").GetString());
            // The prompt token and the two likeliest: two entries where it is one of them, three where it is not.
            var all = entries[p].EnumerateObject().ToArray();
            Assert.Equal(ranks[p] <= 2 ? 2 : 3, all.Length);
            Assert.Contains(all, a => a.Value.GetProperty("rank").GetInt32() == 1);
        }
        Assert.Contains(ranks.Skip(1), r => r > 2);
        // Without it, the field is left out.
        var plain = await server.CompleteAsync(new JsonObject { ["prompt"] = Context, ["max_tokens"] = 2 }, ct);
        Assert.False(ServerFixture.Choice(plain, 0).TryGetProperty("prompt_logprobs", out _));

        // Chat: at the response's top level, one entry per token of the rendered prompt.
        var chat = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell me a story." }), ["max_tokens"] = 2, ["prompt_logprobs"] = 0 };
        var (status, reply) = await server.PostAsync("/v1/chat/completions", chat, ct);
        Assert.Equal(HttpStatusCode.OK, status);
        var chatEntries = reply.GetProperty("prompt_logprobs").EnumerateArray().ToArray();
        Assert.Equal(reply.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), chatEntries.Length);
        Assert.All(chatEntries.Skip(1), e => Assert.Single(e.EnumerateObject()));
        chat["stream"] = true;
        var (refused, error) = await server.PostAsync("/v1/chat/completions", chat, ct);
        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.Equal("prompt_logprobs", error.GetProperty("error").GetProperty("param").GetString());
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task AListOfPromptsRunsEachAndNumbersTheirChoicesPromptByPromptWholeAndStreamed()
    {
        var ct = TestContext.Current.CancellationToken;
        string[] prompts = ["Once upon a time", "Lily saw a big", "The dog ran"];
        var body = new JsonObject { ["prompt"] = new JsonArray([.. prompts.Select(p => (JsonNode)p)]), ["max_tokens"] = 10, ["temperature"] = 0, ["n"] = 2, ["echo"] = true };
        var json = await server.CompleteAsync(body, ct);
        Assert.Equal(6, json.GetProperty("choices").GetArrayLength());
        var references = prompts.Select(p => server.Reference(p, new KvSharp.Engine.GenerationOptions { MaxTokens = 10 })).ToArray();
        for (int p = 0; p < prompts.Length; p++)
            for (int i = 0; i < 2; i++)
                Assert.Equal(prompts[p] + references[p].Text, ServerFixture.Text(json, p * 2 + i));
        var usage = json.GetProperty("usage");
        Assert.Equal(prompts.Sum(p => Ids(p).Length), usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(2 * references.Sum(r => r.Tokens.Length), usage.GetProperty("completion_tokens").GetInt32());

        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        var events = await server.StreamAsync(body, ct);
        Assert.Single(events.Select(e => e.GetProperty("id").GetString()).Distinct());
        for (int c = 0; c < 6; c++) Assert.Equal(ServerFixture.Text(json, c), ServerFixture.StreamedText(events, c));
        // Each choice's first chunk is its echoed prompt; one usage chunk at the end, for all of them.
        for (int c = 0; c < 6; c++)
            Assert.Equal(prompts[c / 2], events.SelectMany(e => e.GetProperty("choices").EnumerateArray()).First(x => x.GetProperty("index").GetInt32() == c).GetProperty("text").GetString());
        Assert.Empty(events[^1].GetProperty("choices").EnumerateArray());
        ServerFixture.AssertSameCounts(usage, events[^1].GetProperty("usage"));
        Assert.Single(events, e => e.GetProperty("usage").ValueKind == JsonValueKind.Object);

        // One prompt of the list too long: the whole call is refused, naming it, with nothing started.
        body["prompt"] = new JsonArray("Once upon a time", string.Concat(Enumerable.Repeat("a ", 600)));
        var (status, error) = await server.PostAsync("/v1/completions", body, ct);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(("context_length_exceeded", "prompt[1]"), (error.GetProperty("error").GetProperty("code").GetString(), error.GetProperty("error").GetProperty("param").GetString()));
        await server.WaitForNoBlocksAsync();
    }
}
