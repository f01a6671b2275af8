using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>POST /v1/completions against a real server: OpenAI's shapes, streamed and whole, n, stop, seeds.</summary>
public class CompletionsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Prompt = "Once upon a time";

    private static JsonObject Greedy(string prompt, int maxTokens) => new() { ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = 0 };

    [Fact]
    public async Task GreedyOutputEqualsTheLibrarysInferenceSession()
    {
        using var session = server.ReferenceModel.CreateSession(new SessionOptions { ContextLength = 512 });
        foreach (var (prompt, max) in new[] { (Prompt, 40), ("Lily and Ben went to the park", 60), ("Zoo", 200) })
        {
            string expected = string.Concat(session.Generate(prompt, new GenerationOptions { MaxTokens = max }));
            var stats = session.LastStats!;
            session.Reset();

            var json = await server.CompleteAsync(Greedy(prompt, max), TestContext.Current.CancellationToken);
            Assert.Equal(expected, ServerFixture.Text(json));
            Assert.Equal(stats.FinishReason == FinishReason.Stop ? "stop" : "length", ServerFixture.Choice(json, 0).GetProperty("finish_reason").GetString());
            var usage = json.GetProperty("usage");
            Assert.Equal(stats.PromptTokens, usage.GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(stats.GeneratedTokens, usage.GetProperty("completion_tokens").GetInt32());
            Assert.Equal(stats.PromptTokens + stats.GeneratedTokens, usage.GetProperty("total_tokens").GetInt32());
        }
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task ResponseHasOpenAisShape()
    {
        var json = await server.CompleteAsync(Greedy(Prompt, 5), TestContext.Current.CancellationToken);
        Assert.StartsWith("cmpl-", json.GetProperty("id").GetString());
        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        Assert.Equal("stories260K.gguf", json.GetProperty("model").GetString());
        Assert.True(json.GetProperty("created").GetInt64() > 1_600_000_000);
        var choice = ServerFixture.Choice(json, 0);
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        // Other tests' prompts on this server share at least the BOS row; the last prompt token is always computed.
        var usage = json.GetProperty("usage");
        Assert.InRange(usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32(), 0, usage.GetProperty("prompt_tokens").GetInt32() - 1);
    }

    [Fact]
    public async Task StreamingSendsTheSameTextInChunksThenFinishUsageAndDone()
    {
        var ct = TestContext.Current.CancellationToken;
        var whole = await server.CompleteAsync(Greedy(Prompt, 30), ct);
        var body = Greedy(Prompt, 30);
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        var events = await server.StreamAsync(body, ct);

        Assert.Equal(ServerFixture.Text(whole), ServerFixture.StreamedText(events));
        Assert.All(events, e => Assert.Equal("text_completion", e.GetProperty("object").GetString()));
        Assert.Single(events.Select(e => e.GetProperty("id").GetString()).Distinct());
        // Text chunks have no finish reason and no usage; then one finish chunk; then the usage alone.
        var finish = events[^2].GetProperty("choices")[0];
        Assert.Equal("length", finish.GetProperty("finish_reason").GetString());
        Assert.All(events.Take(events.Count - 2), e => Assert.Equal(JsonValueKind.Null, e.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.All(events.Take(events.Count - 1), e => Assert.Equal(JsonValueKind.Null, e.GetProperty("usage").ValueKind));
        Assert.Empty(events[^1].GetProperty("choices").EnumerateArray());
        ServerFixture.AssertSameCounts(whole.GetProperty("usage"), events[^1].GetProperty("usage"));

        // Without include_usage there is no usage chunk.
        var plain = await server.StreamAsync(Greedy(Prompt, 30), ct);
        Assert.Equal("length", plain[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(plain, e => Assert.Equal(JsonValueKind.Null, e.GetProperty("usage").ValueKind));
    }

    [Fact]
    public async Task SameSeedSameTextOtherSeedsDiffer()
    {
        var ct = TestContext.Current.CancellationToken;
        JsonObject Sampled(long seed) => new() { ["prompt"] = Prompt, ["max_tokens"] = 40, ["temperature"] = 1.0, ["top_p"] = 0.95, ["seed"] = seed, ["ignore_eos"] = true };
        string a = ServerFixture.Text(await server.CompleteAsync(Sampled(7), ct));
        string again = ServerFixture.Text(await server.CompleteAsync(Sampled(7), ct));
        var streamed = ServerFixture.StreamedText(await server.StreamAsync(Sampled(7), ct));
        Assert.Equal(a, again);
        Assert.Equal(a, streamed);
        var others = new[] { 8L, 9L, 10L };
        var texts = await Task.WhenAll(others.Select(async s => ServerFixture.Text(await server.CompleteAsync(Sampled(s), ct))));
        Assert.Contains(texts, t => t != a);
    }

    [Fact]
    public async Task NChoicesShareThePromptAndEachEqualsASingleRequestWithItsSeed()
    {
        var ct = TestContext.Current.CancellationToken;
        JsonObject Body(int n, long seed) => new() { ["prompt"] = Prompt, ["max_tokens"] = 25, ["temperature"] = 1.0, ["seed"] = seed, ["n"] = n };
        var json = await server.CompleteAsync(Body(3, 100), ct);
        Assert.Equal(3, json.GetProperty("choices").GetArrayLength());
        int completionTokens = 0;
        for (int i = 0; i < 3; i++)
        {
            // Sample i draws from seed + i: the same text a lone request with that seed gets.
            var alone = await server.CompleteAsync(Body(1, 100 + i), ct);
            Assert.Equal(ServerFixture.Text(alone), ServerFixture.Text(json, i));
            completionTokens += alone.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        }
        var usage = json.GetProperty("usage");
        Assert.Equal(completionTokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + completionTokens, usage.GetProperty("total_tokens").GetInt32());

        var streamBody = Body(3, 100);
        streamBody["stream_options"] = new JsonObject { ["include_usage"] = true };
        var events = await server.StreamAsync(streamBody, ct);
        for (int i = 0; i < 3; i++) Assert.Equal(ServerFixture.Text(json, i), ServerFixture.StreamedText(events, i));
        ServerFixture.AssertSameCounts(usage, events[^1].GetProperty("usage"));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task StopStringsEndTheTextBeforeThemAsAStringOrAList()
    {
        var ct = TestContext.Current.CancellationToken;
        string full = ServerFixture.Text(await server.CompleteAsync(Greedy(Prompt, 60), ct));
        // A word from the middle of the greedy text, and where it first appears.
        string word = full.Split(' ', StringSplitOptions.RemoveEmptyEntries)[5];
        string expected = full[..full.IndexOf(word, StringComparison.Ordinal)];

        var single = Greedy(Prompt, 60);
        single["stop"] = word;
        var json = await server.CompleteAsync(single, ct);
        Assert.Equal(expected, ServerFixture.Text(json));
        Assert.Equal("stop", ServerFixture.Choice(json, 0).GetProperty("finish_reason").GetString());

        var list = Greedy(Prompt, 60);
        list["stop"] = new JsonArray("never appears", word);
        Assert.Equal(expected, ServerFixture.Text(await server.CompleteAsync(list, ct)));
        var streamed = await server.StreamAsync(list, ct);
        Assert.Equal(expected, ServerFixture.StreamedText(streamed));
        Assert.Equal("stop", streamed[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task PromptAsTokenIdsEqualsPromptAsText()
    {
        var ct = TestContext.Current.CancellationToken;
        var ids = server.ReferenceModel.Tokenizer.Encode(Prompt, addSpecial: true, parseSpecial: true);
        var byIds = Greedy("", 20);
        byIds["prompt"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray());
        var batchOfOne = Greedy("", 20);
        batchOfOne["prompt"] = new JsonArray(Prompt);
        string text = ServerFixture.Text(await server.CompleteAsync(Greedy(Prompt, 20), ct));
        Assert.Equal(text, ServerFixture.Text(await server.CompleteAsync(byIds, ct)));
        Assert.Equal(text, ServerFixture.Text(await server.CompleteAsync(batchOfOne, ct)));
    }

    [Fact]
    public async Task ModelFieldMayNameTheServedModelAndMaxTokensDefaultsToSixteen()
    {
        var body = new JsonObject { ["model"] = "stories260K.gguf", ["prompt"] = Prompt, ["temperature"] = 0, ["ignore_eos"] = true };
        var json = await server.CompleteAsync(body, TestContext.Current.CancellationToken);
        Assert.Equal(16, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task LogprobsAreTheModelsOwnAndStreamTheSame()
    {
        var ct = TestContext.Current.CancellationToken;
        var body = Greedy(Prompt, 12);
        body["logprobs"] = 3;
        var json = await server.CompleteAsync(body, ct);
        var lp = ServerFixture.Choice(json, 0).GetProperty("logprobs");
        string[] tokens = lp.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()!).ToArray();
        float[] sampled = lp.GetProperty("token_logprobs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var top = lp.GetProperty("top_logprobs").EnumerateArray().ToArray();
        int[] offsets = lp.GetProperty("text_offset").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(12, tokens.Length);
        Assert.Equal(ServerFixture.Text(json), string.Concat(tokens));
        for (int i = 0; i < tokens.Length; i++)
        {
            Assert.Equal(string.Concat(tokens[..i]).Length, offsets[i]);
            Assert.True(sampled[i] <= 0);
            // Greedy: the sampled token is the likeliest, listed first with the same logprob.
            var alternatives = top[i].EnumerateObject().ToArray();
            Assert.Equal(3, alternatives.Length);
            Assert.Equal(tokens[i], alternatives[0].Name);
            Assert.Equal(sampled[i], alternatives[0].Value.GetSingle());
        }
        // The first token's logprob is the log-softmax of the logits after the prompt.
        var ids = server.ReferenceModel.Tokenizer.Encode(Prompt, addSpecial: true, parseSpecial: true);
        var logits = server.ReferenceModel.Evaluate(ids, server.ReferenceModel.CreateCache(contextLength: 512));
        double logTotal = Math.Log(logits.Sum(l => Math.Exp(l)));
        Assert.Equal(logits.Max() - logTotal, sampled[0], 1e-4);

        body["stream"] = true;
        var events = await server.StreamAsync(body, ct);
        var streamedTokens = events.SelectMany(e => e.GetProperty("choices").EnumerateArray())
            .Where(c => c.GetProperty("logprobs").ValueKind == JsonValueKind.Object)
            .SelectMany(c => c.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(tokens, streamedTokens);

        // Without logprobs, none.
        Assert.Equal(JsonValueKind.Null, ServerFixture.Choice(await server.CompleteAsync(Greedy(Prompt, 3), ct), 0).GetProperty("logprobs").ValueKind);
    }
}
