using System.Diagnostics;
using KvSharp.Cache;
using KvSharp.Sampling;

namespace KvSharp.Evaluation;

/// <summary>
/// Measures what cache configurations (<see cref="EvalSetup"/>) cost in quality against the exact cache (F32, every
/// position kept), teacher-forced over a text: the text runs in windows that fit the context (<see cref="EvalWindow"/>),
/// each window through the exact cache and every setup's cache in lockstep, a chunk of tokens at a time, so only one
/// chunk of logits per cache is ever held. Each scored position adds to every setup its token's negative
/// log-likelihood, the KL divergence of its next-token distribution from the exact cache's, and whether their most
/// likely tokens agree. The last tokens of each window run as single-token decode steps and are timed.
/// </summary>
public static class KvEvaluator
{
    public static EvalReport Run(LlmModel model, IReadOnlyList<int> text, IReadOnlyList<EvalSetup> setups, EvalOptions? options = null)
    {
        options ??= new EvalOptions();
        options.Validate();
        if (setups.Count == 0) throw new ArgumentException("no cache configurations to evaluate", nameof(setups));
        var config = model.Config;
        int vocab = config.VocabSize, context = options.ContextLength ?? config.TrainedContextLength;
        foreach (int t in text)
            if ((uint)t >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(text), t, $"a token of the text is outside the vocabulary [0, {vocab})");
        var tok = model.Tokenizer;
        var windows = EvalWindow.Split(text, context, tok.AddBos && tok.BosId >= 0 ? tok.BosId : null);
        int segments = (text.Count + options.SegmentTokens - 1) / options.SegmentTokens;

        int chunk = Math.Min(options.ChunkTokens, context);
        var forward = model.CreateForwardPass(maxBatch: chunk);
        var exact = new KvCache(config, KvCacheMode.Contiguous, context);
        var runs = setups.Select(s => new RunTotals(s, s.CreateCache(config, context, model.Rope), segments)).ToArray();
        var exactLogits = new float[chunk * vocab];
        var logits = new float[chunk * vocab];
        foreach (var window in windows)
        {
            exact.Reset();
            foreach (var run in runs) run.Cache.Reset();
            int length = window.Tokens.Length, decodeFrom = Math.Max(1, length - options.DecodeTokens);
            for (int position = 0; position < length;)
            {
                bool decode = position >= decodeFrom;
                int n = decode ? 1 : Math.Min(chunk, decodeFrom - position);
                var tokens = window.Tokens.AsSpan(position, n);
                forward.Forward(tokens, exact, exactLogits.AsSpan(0, n * vocab), allLogits: true);
                foreach (var run in runs)
                {
                    long started = Stopwatch.GetTimestamp();
                    forward.Forward(tokens, run.Cache, logits.AsSpan(0, n * vocab), allLogits: true);
                    if (decode) run.AddDecodeStep(Stopwatch.GetElapsedTime(started));
                    for (int i = 0; i < n; i++)
                    {
                        int next = position + i + 1;
                        if (!window.IsScored(next)) continue;
                        run.Score(exactLogits.AsSpan(i * vocab, vocab), logits.AsSpan(i * vocab, vocab), window.Tokens[next],
                            window.TextIndex(next) / options.SegmentTokens);
                    }
                }
                position += n;
            }
            foreach (var run in runs) run.PeakBytes = Math.Max(run.PeakBytes, run.Cache.UsedBytes);
        }
        if (runs[0].Scored == 0) throw new ArgumentException($"the text of {text.Count} tokens has no token to score (it needs one after its start)", nameof(text));
        return new EvalReport
        {
            Tokens = text.Count,
            ScoredTokens = runs[0].Scored,
            ContextLength = context,
            Windows = windows.Count,
            SegmentTokens = options.SegmentTokens,
            Runs = runs.Select(r => r.ToRun()).ToArray(),
        };
    }

    /// <summary>One setup's cache and running sums.</summary>
    private sealed class RunTotals(EvalSetup setup, KvCache cache, int segments)
    {
        private readonly double[] _segmentNll = new double[segments];
        private readonly int[] _segmentScored = new int[segments];
        private double _nll, _kl;
        private int _agree, _decodeSteps;
        private TimeSpan _decodeTime;

        public KvCache Cache { get; } = cache;
        public int Scored { get; private set; }
        public long PeakBytes { get; set; }

        public void Score(ReadOnlySpan<float> exact, ReadOnlySpan<float> logits, int target, int segment)
        {
            double nll = LogitStats.NegativeLogLikelihood(logits, target);
            _nll += nll;
            _segmentNll[segment] += nll;
            _segmentScored[segment]++;
            _kl += LogitStats.KlDivergence(exact, logits);
            if (Sampler.ArgMax(exact) == Sampler.ArgMax(logits)) _agree++;
            Scored++;
        }

        public void AddDecodeStep(TimeSpan time)
        {
            _decodeTime += time;
            _decodeSteps++;
        }

        public EvalRun ToRun() => new()
        {
            Policy = setup.Policy,
            KeyType = setup.KeyType,
            ValueType = setup.ValueType,
            Perplexity = Math.Exp(_nll / Scored),
            MeanKl = _kl / Scored,
            Top1Agreement = (double)_agree / Scored,
            KvBytesPerToken = Cache.BytesPerToken,
            PeakKvBytes = PeakBytes,
            DecodeTokensPerSecond = _decodeTime > TimeSpan.Zero ? _decodeSteps / _decodeTime.TotalSeconds : 0,
            SegmentPerplexity = _segmentNll.Select((nll, i) => _segmentScored[i] > 0 ? Math.Exp(nll / _segmentScored[i]) : double.NaN).ToArray(),
        };
    }
}
