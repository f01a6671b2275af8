using System.Text;
using System.Text.Json;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Sampling;

/// <summary>
/// SamplingOptions.LogitBias (OpenAI's and llama.cpp's logit_bias): added to the named tokens' logits before the
/// penalties and every filter; negative infinity rules a token out, on every sampling path; ids the model does not have,
/// biases that are not numbers and a bias that rules out the whole vocabulary are refused by name.
/// </summary>
public class LogitBiasTests
{
    private static int Greedy(float[] logits, IReadOnlyDictionary<int, float> bias, SamplingOptions? o = null, int[]? history = null) =>
        new Sampler((o ?? SamplingOptions.Greedy) with { LogitBias = bias }, logits.Length).Sample((float[])logits.Clone(), history ?? []);

    [Fact]
    public void ABiasMovesTheGreedyChoiceAndABanTakesTheNextBest()
    {
        float[] logits = [1f, 3f, 2.5f, 0f];
        Assert.Equal(1, Greedy(logits, new Dictionary<int, float>()));
        Assert.Equal(3, Greedy(logits, new Dictionary<int, float> { [3] = 3.5f }));
        Assert.Equal(2, Greedy(logits, new Dictionary<int, float> { [1] = float.NegativeInfinity }));
        Assert.Equal(0, Greedy(logits, new Dictionary<int, float> { [1] = -100f, [2] = -100f }));
    }

    [Fact]
    public void TheBiasComesBeforeTheRepetitionPenaltyAsInLlamaCpp()
    {
        // Token 0 was seen: the penalty divides its (biased) logit. Bias first: (2 + 1) / 2 = 1.5 < 1.9, token 1 wins;
        // the other order would give 2 / 2 + 1 = 2 > 1.9.
        float[] logits = [2f, 1.9f];
        var o = new SamplingOptions { RepetitionPenalty = 2f };
        Assert.Equal(1, Greedy(logits, new Dictionary<int, float> { [0] = 1f }, o, history: [0]));
    }

    [Fact]
    public void ABannedTokenIsNeverDrawnWhateverTheFilters()
    {
        // The banned token is the likeliest and the last id (where a draw that rounding carries past the end lands).
        float[] logits = [0.5f, 0.2f, 0.1f, 0.4f, 4f];
        var ban = new Dictionary<int, float> { [4] = float.NegativeInfinity };
        foreach (var o in new[]
        {
            new SamplingOptions { Temperature = 1f, Seed = 3 },
            new SamplingOptions { Temperature = 2f, TopK = 5, Seed = 4 },
            new SamplingOptions { Temperature = 0.7f, TopP = 0.99f, Seed = 5 },
            new SamplingOptions { Temperature = 1.5f, MinP = 0.01f, Seed = 6 },
            new SamplingOptions { Temperature = 1f, PresencePenalty = -2f, FrequencyPenalty = -2f, Seed = 7 },
        })
        {
            var sampler = new Sampler(o with { LogitBias = ban }, logits.Length);
            var drawn = Enumerable.Range(0, 3000).Select(_ => sampler.Sample((float[])logits.Clone(), [4, 4])).ToHashSet();
            Assert.DoesNotContain(4, drawn);
            Assert.True(drawn.Count >= 3, $"{o}: drew {string.Join(",", drawn)}");
        }
    }

    [Fact]
    public void BadBiasesAreRefusedByName()
    {
        var outside = Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { LogitBias = new Dictionary<int, float> { [512] = 1f } }, 512));
        Assert.Contains("token 512", outside.Message);
        Assert.Contains("512 tokens", outside.Message);
        var negative = Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions { LogitBias = new Dictionary<int, float> { [-1] = 1f } }.Validate());
        Assert.Contains("token -1", negative.Message);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(new SamplingOptions { LogitBias = new Dictionary<int, float> { [3] = bad } }, 8));
            Assert.Contains("token 3", e.Message);
        }
        var all = Assert.Throws<ArgumentException>(() =>
            new Sampler(new SamplingOptions { LogitBias = Enumerable.Range(0, 4).ToDictionary(t => t, _ => float.NegativeInfinity) }, 4));
        Assert.Contains("rules out all 4 tokens", all.Message);
    }

    [Fact]
    public void OnTheRealModelABanTakesTheRunnerUpAndALargeBiasRepeatsItsToken()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        var prompt = model.Tokenizer.Encode("Once upon a time", addSpecial: true, parseSpecial: false);
        var plain = Generated(session, prompt, null);

        // The runner-up of the prompt's logits, computed apart: what a ban of the greedy token must give.
        var logits = model.Evaluate(prompt, model.CreateCache(KvSharp.Cache.KvCacheMode.Contiguous, 256));
        Assert.Equal(plain[0], Sampler.ArgMax(logits));
        logits[plain[0]] = float.NegativeInfinity;
        int runnerUp = Sampler.ArgMax(logits);
        var banned = Generated(session, prompt, new Dictionary<int, float> { [plain[0]] = float.NegativeInfinity });
        Assert.Equal(runnerUp, banned[0]);
        Assert.NotEqual(plain[0], banned[0]);

        int forced = plain[3];
        Assert.All(Generated(session, prompt, new Dictionary<int, float> { [forced] = 100f }), t => Assert.Equal(forced, t));
    }

    [Fact]
    public void ABiasThatRulesOutEveryTokenTheJsonAllowsEndsTheReplyInsteadOfBreakingIt()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        // Every token that opens an object or is only whitespace: the JSON mode has nothing left to start with.
        var ban = new Dictionary<int, float>();
        for (int t = 0; t < model.Config.VocabSize; t++)
        {
            string piece = Encoding.UTF8.GetString(model.Tokenizer.TokenPiece(t));
            if (piece.Contains('{') || (piece.Length > 0 && string.IsNullOrWhiteSpace(piece))) ban[t] = float.NegativeInfinity;
        }
        Assert.NotEmpty(ban);
        foreach (float temperature in new[] { 0f, 1f })
        {
            var options = new GenerationOptions
            {
                MaxTokens = 20, Format = ResponseFormat.JsonObject,
                Sampling = new SamplingOptions { Temperature = temperature, Seed = 9, LogitBias = ban },
            };
            string text = string.Concat(session.Generate("Once upon a time", options));
            Assert.Equal("", text.Trim());
            Assert.Equal(FinishReason.Stop, session.LastStats!.FinishReason);
        }
        // Without the bias the same request writes an object.
        string free = string.Concat(session.Generate("Once upon a time", new GenerationOptions { MaxTokens = 20, Format = ResponseFormat.JsonObject }));
        Assert.StartsWith("{", free.TrimStart());
    }

    private static int[] Generated(InferenceSession session, IReadOnlyList<int> prompt, IReadOnlyDictionary<int, float>? bias) =>
        KvSharp.Tests.Engine.FreshRun.Of(session, prompt,
            new GenerationOptions { MaxTokens = 8, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy with { LogitBias = bias } }).Tokens;
}
