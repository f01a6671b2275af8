using KvSharp.Cache.Policies;
using KvSharp.Models;

namespace KvSharp.Reference;

/// <summary>
/// H2O and SnapKV written to be read, for <see cref="ReferenceModel"/>: per layer and KV head a list of the positions
/// held, the scores in double, attention over exactly the held keys (rotated at their own positions, as both papers
/// keep them). The caches' fast versions (<see cref="ScoredAttention"/>) are held to this.
/// <list type="bullet">
/// <item>H2O: the query's own position joins; while more than B are held, the one with the least accumulated
/// attention among those older than the R most recent goes (ties: the oldest); the query attends; each query head's
/// probabilities add to the scores of what it attended to.</item>
/// <item>SnapKV: every query attends to all held. At the end of a prefill of more than one token that leaves more than
/// B held, its last O queries' probabilities over the positions before them are summed, max-pooled over 7 neighbours,
/// and the B - O positions with the most votes (ties: the newer) stay, with the O observed ones.</item>
/// </list>
/// </summary>
public sealed class ScoredReference
{
    private readonly ModelConfig _c;
    private readonly KvCachePolicy _policy;
    private readonly int _budget;
    // [layer][kv head]: positions held, ascending; scores by position.
    private readonly List<int>[][] _held;
    private readonly double[][][] _scores;
    // SnapKV: the prefill being run (its length, first position) and its observing queries per layer: (position, q).
    private int _prefillTokens, _prefillStart;
    private readonly List<(int Position, float[] Query)>[] _observed;

    public ScoredReference(ModelConfig config, KvCachePolicy policy, int contextLength)
    {
        if (!policy.EvictsByScore) throw new ArgumentException($"cache policy '{policy}' does not evict by score", nameof(policy));
        _c = config;
        _policy = policy;
        _budget = policy.EvictionBudget!.Value;
        _held = new List<int>[config.LayerCount][];
        _scores = new double[config.LayerCount][][];
        _observed = new List<(int, float[])>[config.LayerCount];
        for (int l = 0; l < config.LayerCount; l++)
        {
            _held[l] = new List<int>[config.KvHeadCount];
            _scores[l] = new double[config.KvHeadCount][];
            _observed[l] = [];
            for (int h = 0; h < config.KvHeadCount; h++)
            {
                _held[l][h] = [];
                _scores[l][h] = new double[contextLength];
            }
        }
    }

    public IReadOnlyList<int> Held(int layer, int kvHead) => _held[layer][kvHead];

    public void Reset()
    {
        foreach (var layer in _held) foreach (var h in layer) h.Clear();
        foreach (var layer in _scores) foreach (var h in layer) Array.Clear(h);
    }

    /// <summary>The next <paramref name="tokens"/> tokens from <paramref name="start"/> are one prefill (SnapKV compresses after it).</summary>
    public void BeginPrefill(int start, int tokens)
    {
        _prefillStart = start;
        _prefillTokens = tokens;
        foreach (var o in _observed) o.Clear();
    }

    /// <summary>
    /// Attention of the query at <paramref name="position"/> (all heads, rotated) in layer <paramref name="layer"/> over
    /// the held keys (rows by position, rotated at their own) and values, into <paramref name="attention"/>.
    /// </summary>
    public void Attend(int layer, float[] query, float[][] keys, float[][] values, int position, float[] attention)
    {
        int hd = _c.HeadDim;
        double scale = 1 / Math.Sqrt(hd);
        if (_policy.Eviction == KvEviction.SnapKv && _prefillTokens > 1 && position >= _prefillStart + _prefillTokens - Math.Min(_policy.Observation, _prefillTokens))
            _observed[layer].Add((position, query.ToArray()));
        for (int h = 0; h < _c.KvHeadCount; h++)
        {
            var held = _held[layer][h];
            held.Add(position);
            if (_policy.Eviction == KvEviction.HeavyHitters)
                while (held.Count > _budget)
                {
                    int victim = -1;
                    for (int i = 0; i < held.Count - 1 && held[i] <= position - _policy.Recent; i++)
                        if (victim < 0 || _scores[layer][h][held[i]] < _scores[layer][h][held[victim]]) victim = i;
                    held.RemoveAt(victim);
                }
            var (k, v) = Gather(keys[h], values[h], held);
            for (int g = 0; g < _c.GroupSize; g++)
            {
                int head = h * _c.GroupSize + g;
                var p = ReferenceAttention.Probabilities(query.AsSpan(head * hd, hd), k, held.Count, scale);
                for (int i = 0; i < hd; i++)
                {
                    double o = 0;
                    for (int j = 0; j < held.Count; j++) o += p[j] * v[j * hd + i];
                    attention[head * hd + i] = (float)o;
                }
                if (_policy.Eviction == KvEviction.HeavyHitters)
                    for (int j = 0; j < held.Count; j++) _scores[layer][h][held[j]] += p[j];
            }
        }
    }

    /// <summary>Ends the prefill begun by <see cref="BeginPrefill"/>: SnapKV compresses each layer and head by its votes.</summary>
    public void EndPrefill(float[][][] keys)
    {
        if (_policy.Eviction != KvEviction.SnapKv || _prefillTokens < 2) return;
        int hd = _c.HeadDim, observed = Math.Min(_policy.Observation, _prefillTokens);
        double scale = 1 / Math.Sqrt(hd);
        for (int l = 0; l < _c.LayerCount; l++)
            for (int h = 0; h < _c.KvHeadCount; h++)
            {
                var held = _held[l][h];
                if (held.Count <= _budget) continue;
                int prefix = held.Count - observed;
                var votes = new double[prefix];
                foreach (var (position, query) in _observed[l])
                {
                    var seen = held.Where(p => p <= position).ToList();
                    var (k, _) = Gather(keys[l][h], keys[l][h], seen);
                    for (int g = 0; g < _c.GroupSize; g++)
                    {
                        var p = ReferenceAttention.Probabilities(query.AsSpan((h * _c.GroupSize + g) * hd, hd), k, seen.Count, scale);
                        for (int j = 0; j < prefix; j++) votes[j] += p[j];
                    }
                }
                int reach = ScoredAttention.PoolKernel / 2;
                var pooled = Enumerable.Range(0, prefix)
                    .Select(j => Enumerable.Range(Math.Max(0, j - reach), Math.Min(prefix - 1, j + reach) - Math.Max(0, j - reach) + 1).Max(i => votes[i]))
                    .ToArray();
                var kept = Enumerable.Range(0, prefix).OrderByDescending(j => pooled[j]).ThenByDescending(j => j).Take(_budget - observed)
                    .Select(j => held[j]).Concat(held.Skip(prefix)).Order().ToList();
                held.Clear();
                held.AddRange(kept);
            }
    }

    private (float[] Keys, float[] Values) Gather(float[] keys, float[] values, List<int> positions)
    {
        int hd = _c.HeadDim;
        var k = new float[positions.Count * hd];
        var v = new float[positions.Count * hd];
        for (int j = 0; j < positions.Count; j++)
        {
            Array.Copy(keys, positions[j] * hd, k, j * hd, hd);
            Array.Copy(values, positions[j] * hd, v, j * hd, hd);
        }
        return (k, v);
    }
}
