using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Evaluation;

namespace KvSharp.Tests.Evaluation;

/// <summary>
/// <see cref="KvEvaluator"/> on the real stories260K model: its perplexity is the textbook one computed from the
/// model's logits, the exact cache measured against itself differs by nothing, windows score every token once, and
/// the quantized caches order as their precision does.
/// </summary>
public class KvEvaluatorTests
{
    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private const string Story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " +
        "One day, she saw a big red ball under a tree. She ran to get it, but a dog took it first. Lily was sad, but the dog came back and gave her the ball.";

    [Fact]
    public void PerplexityOfTheExactCacheIsTheOneComputedByHandFromTheLogits()
    {
        using var model = Stories();
        var tokens = model.Tokenizer.Encode(Story, addSpecial: true, parseSpecial: false);
        int vocab = model.Config.VocabSize;
        var logits = model.Evaluate(tokens, model.CreateCache(contextLength: 256), allLogits: true);
        double nll = 0;
        for (int i = 0; i + 1 < tokens.Length; i++)
        {
            var row = logits.AsSpan(i * vocab, vocab);
            double max = double.NegativeInfinity, sum = 0;
            foreach (float l in row) max = Math.Max(max, l);
            foreach (float l in row) sum += Math.Exp(l - max);
            nll += -(row[tokens[i + 1]] - max - Math.Log(sum));
        }
        double expected = Math.Exp(nll / (tokens.Length - 1));

        var report = KvEvaluator.Run(model, tokens, [new EvalSetup(KvElementType.F32)], new EvalOptions { ContextLength = 256 });
        var run = Assert.Single(report.Runs);
        Assert.Equal(tokens.Length - 1, report.ScoredTokens);
        Assert.Equal(1, report.Windows);
        Assert.Equal(expected, run.Perplexity, 1e-9);
        Assert.InRange(run.Perplexity, 1.5, 50);
        Assert.Equal(0, run.MeanKl);
        Assert.Equal(1, run.Top1Agreement);
        Assert.Equal("full", run.Policy);
        Assert.Equal((KvElementType.F32, KvElementType.F32), (run.KeyType, run.ValueType));
        Assert.Equal(model.CreateCache().BytesPerToken, run.KvBytesPerToken);
        Assert.Equal(tokens.Length * run.KvBytesPerToken, run.PeakKvBytes);
        Assert.True(run.DecodeTokensPerSecond > 0);
        Assert.Equal(run.Perplexity, Assert.Single(run.SegmentPerplexity), 1e-9);
    }

    [Fact]
    public void PoliciesAreMeasuredAgainstTheExactCacheWithTheirOwnMemory()
    {
        using var model = Stories();
        var text = EvalText.Generate(model, 300, seed: 3);
        var options = new EvalOptions { ContextLength = 300, ChunkTokens = 16, DecodeTokens = 8 };
        var report = KvEvaluator.Run(model, text,
            [new EvalSetup(KvElementType.F32, KvCachePolicy.SlidingWindow(300)), new EvalSetup(KvElementType.F32, KvCachePolicy.SlidingWindow(24)),
             new EvalSetup(KvElementType.F32, KvCachePolicy.Parse("sinks:4+window:20")), new EvalSetup(KvElementType.F16, KvCachePolicy.SlidingWindow(24))],
            options);
        Assert.Equal(["window:300", "window:24", "sinks:4+window:20", "window:24"], report.Runs.Select(r => r.Policy));
        // A window as long as the text keeps everything: the exact cache's numbers, bit for bit.
        Assert.Equal(0, report.Runs[0].MeanKl);
        Assert.Equal(1, report.Runs[0].Top1Agreement);
        Assert.Equal(300 * report.Runs[0].KvBytesPerToken, report.Runs[0].PeakKvBytes);
        for (int i = 1; i < 4; i++)
        {
            Assert.InRange(report.Runs[i].MeanKl, 1e-6, 2);
            // The budget plus the rows a 16-token chunk needs while its first query still sees its window.
            Assert.Equal((24 + 15) * report.Runs[i].KvBytesPerToken, report.Runs[i].PeakKvBytes);
        }
        Assert.True(report.Runs[3].MeanKl > report.Runs[1].MeanKl * 0.5);
        Assert.Contains("more than the context length of 300", Assert.Throws<ArgumentException>(() =>
            KvEvaluator.Run(model, text, [new EvalSetup(KvElementType.F32, KvCachePolicy.SlidingWindow(301))], options)).Message);
    }

    [Fact]
    public void ScoreBasedPoliciesAreMeasuredWithTheirEvictionsPerChunk()
    {
        using var model = Stories();
        var report = KvEvaluator.Run(model, EvalText.Generate(model, 300, seed: 3),
            [new EvalSetup(KvElementType.F32, KvCachePolicy.Parse("h2o:300")), new EvalSetup(KvElementType.F32, KvCachePolicy.Parse("snapkv:300")),
             new EvalSetup(KvElementType.F32, KvCachePolicy.Parse("h2o:24")), new EvalSetup(KvElementType.F32, KvCachePolicy.Parse("snapkv:24+obs:8")),
             new EvalSetup(KvElementType.Q8_0, KvCachePolicy.Parse("h2o:24"))],
            new EvalOptions { ContextLength = 300, ChunkTokens = 16, DecodeTokens = 8 });
        Assert.Equal(["h2o:300", "snapkv:300", "h2o:24", "snapkv:24+obs:8", "h2o:24"], report.Runs.Select(r => r.Policy));
        // A budget as long as the text evicts nothing: the exact cache's numbers, bit for bit.
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(0, report.Runs[i].MeanKl);
            Assert.Equal(1, report.Runs[i].Top1Agreement);
        }
        for (int i = 2; i < 5; i++) Assert.InRange(report.Runs[i].MeanKl, 1e-6, 2);
        // Between steps H2O holds its budget; SnapKV its budget after each 16-token prefill, then the 8 decode steps appended.
        Assert.Equal(24 * report.Runs[2].KvBytesPerToken, report.Runs[2].PeakKvBytes);
        Assert.Equal((24 + 8) * report.Runs[3].KvBytesPerToken, report.Runs[3].PeakKvBytes);
        Assert.True(report.Runs[4].MeanKl > report.Runs[2].MeanKl * 0.5);
    }

    [Fact]
    public void TheSweepStretchesEachPolicyToEachBudget()
    {
        Assert.Equal(["full", "window:64", "window:128", "sinks:4+window:60", "sinks:4+window:124", "h2o:64", "h2o:128", "snapkv:64", "snapkv:128"],
            PolicySweep.Expand(PolicySweep.DefaultPolicies, [64, 128]).Select(p => p.ToString()));
        Assert.Equal(["h2o:64+recent:16", "h2o:128+recent:32", "snapkv:64+obs:8", "snapkv:128+obs:8", "snapkv:8"],
            PolicySweep.Expand([KvCachePolicy.Parse("h2o:32+recent:8"), KvCachePolicy.Parse("snapkv:32+obs:8")], [64, 128]).Select(p => p.ToString())
                .Concat(PolicySweep.Expand([KvCachePolicy.Parse("snapkv:32+obs:8")], [8]).Select(p => p.ToString())));
    }

    [Fact]
    public void WindowsScoreEveryTokenButBosOnceAndSegmentsSplitTheText()
    {
        using var model = Stories();
        var text = EvalText.Generate(model, 700, seed: 7);
        int bos = model.Tokenizer.BosId;
        var report = KvEvaluator.Run(model, text, [new EvalSetup(KvElementType.F32), new EvalSetup(KvElementType.F16)],
            new EvalOptions { ContextLength = 128, SegmentTokens = 256, ChunkTokens = 24, DecodeTokens = 5 });
        Assert.Equal(text.Count(t => t != bos), report.ScoredTokens);
        Assert.True(report.Windows >= 700 / 128 + 1, $"{report.Windows} windows");
        Assert.Equal(128, report.ContextLength);
        foreach (var run in report.Runs)
        {
            Assert.Equal(3, run.SegmentPerplexity.Count);
            Assert.All(run.SegmentPerplexity, p => Assert.InRange(p, 1, 100));
            Assert.Equal(128 * run.KvBytesPerToken, run.PeakKvBytes);
        }
        Assert.Equal(0, report.Runs[0].MeanKl);
        Assert.Equal(1, report.Runs[0].Top1Agreement);
        Assert.InRange(report.Runs[1].MeanKl, 1e-12, 1e-3);

        // The window, chunk and decode split change no logit: the same text in one long window gives the same numbers.
        var whole = KvEvaluator.Run(model, text[..128], [new EvalSetup(KvElementType.F16)], new EvalOptions { ContextLength = 128, ChunkTokens = 128, DecodeTokens = 0 });
        var chunked = KvEvaluator.Run(model, text[..128], [new EvalSetup(KvElementType.F16)], new EvalOptions { ContextLength = 128, ChunkTokens = 7, DecodeTokens = 40 });
        Assert.Equal(whole.Runs[0].Perplexity, chunked.Runs[0].Perplexity);
        Assert.Equal(whole.Runs[0].MeanKl, chunked.Runs[0].MeanKl);
    }

    [Fact]
    public void Q8LosesLessThanQ4AndBothKeepMostTopTokens()
    {
        using var model = Stories();
        var text = EvalText.Generate(model, 600);
        var report = KvEvaluator.Run(model, text, [new EvalSetup(KvElementType.Q8_0), new EvalSetup(KvElementType.Q4_0)]);
        var (q8, q4) = (report.Runs[0], report.Runs[1]);
        Assert.True(q8.MeanKl > 0 && q8.MeanKl < q4.MeanKl, $"mean KL: q8_0 {q8.MeanKl}, q4_0 {q4.MeanKl}");
        Assert.True(q8.Top1Agreement >= q4.Top1Agreement, $"top-1: q8_0 {q8.Top1Agreement}, q4_0 {q4.Top1Agreement}");
        Assert.InRange(q4.Top1Agreement, 0.5, 1);
        Assert.True(q4.KvBytesPerToken < q8.KvBytesPerToken);
    }

    [Fact]
    public void GeneratedTextIsSeededAndMadeOfPiecesFromBos()
    {
        using var model = Stories();
        var a = EvalText.Generate(model, 300, seed: 1, pieceTokens: 40);
        Assert.Equal(a, EvalText.Generate(model, 300, seed: 1, pieceTokens: 40));
        Assert.NotEqual(a, EvalText.Generate(model, 300, seed: 2, pieceTokens: 40));
        Assert.Equal(300, a.Length);
        int bos = model.Tokenizer.BosId;
        Assert.Equal(bos, a[0]);
        int run = 0;
        for (int i = 0; i < a.Length; i++)
        {
            run = a[i] == bos ? 1 : run + 1;
            Assert.True(run <= 40, $"a piece longer than 40 tokens ends at {i}");
            if (i > 0 && model.Tokenizer.IsEndOfGeneration(a[i - 1])) Assert.Equal(bos, a[i]);
        }
        Assert.True(a.Count(t => t == bos) >= 300 / 40);
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        using var model = Stories();
        int[] text = [model.Tokenizer.BosId, 400, 401];
        Assert.Throws<ArgumentException>(() => KvEvaluator.Run(model, text, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => KvEvaluator.Run(model, text, [new EvalSetup(KvElementType.F32)], new EvalOptions { ContextLength = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => KvEvaluator.Run(model, [1, 99999], [new EvalSetup(KvElementType.F32)]));
        Assert.Contains("no token to score", Assert.Throws<ArgumentException>(() =>
            KvEvaluator.Run(model, [model.Tokenizer.BosId], [new EvalSetup(KvElementType.F32)])).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => EvalText.Generate(model, 0));
    }

    [Fact]
    public void KlDivergenceIsZeroForEqualLogitsAndPositiveOtherwise()
    {
        float[] p = [1f, 2f, 3f, -1f], q = [1f, 2f, 2.5f, -1f];
        Assert.Equal(0, LogitStats.KlDivergence(p, p));
        Assert.Equal(0, LogitStats.KlDivergence(p, p.Select(x => x + 5).ToArray()), 1e-12); // a shift changes no probability
        double expected = 0;
        double zp = Math.Log(p.Sum(x => Math.Exp(x))), zq = Math.Log(q.Sum(x => Math.Exp(x)));
        for (int i = 0; i < p.Length; i++) expected += Math.Exp(p[i] - zp) * (p[i] - zp - (q[i] - zq));
        Assert.Equal(expected, LogitStats.KlDivergence(p, q), 1e-12);
        Assert.True(expected > 0);
        Assert.Equal(zp - 2, LogitStats.NegativeLogLikelihood(p, 1), 1e-12);
    }
}
