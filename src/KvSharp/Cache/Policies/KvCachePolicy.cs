using System.Globalization;
using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>
/// Which positions of a sequence its cache keeps, chosen per sequence:
/// <list type="bullet">
/// <item><c>full</c>: every position (the default; the cache grows to the context length).</item>
/// <item><c>window:W</c>: the last W positions (a sliding window), held in a ring buffer of O(W) rows.</item>
/// <item><c>sinks:S+window:W</c> (StreamingLLM): the first S positions (the attention sinks) plus the last W.</item>
/// <item><c>h2o:B[+recent:R]</c> (H2O): B positions per layer and KV head, the R most recent plus the heaviest by
/// accumulated attention mass (<see cref="KvEviction.HeavyHitters"/>).</item>
/// <item><c>snapkv:B[+obs:O]</c> (SnapKV): each prefill that leaves more than B positions is compressed to B per
/// layer and KV head by the votes of its last O queries (<see cref="KvEviction.SnapKv"/>).</item>
/// </list>
/// Under a window policy a query at position p attends to <see cref="KeptPositions"/>(p), at the positions the cache
/// assigns them: the kept positions in order, numbered from 0 (sinks first, then the window), the query the last of
/// them. The sequence can grow past the model's trained length while no distance the model sees exceeds the budget.
/// Score-based policies keep keys at their own positions (as both papers do) and decide per layer and head from the
/// attention itself, so which positions they keep depends on the text.
/// </summary>
public sealed record KvCachePolicy
{
    /// <summary>Keeps every position.</summary>
    public static KvCachePolicy Full { get; } = new(0, null);

    /// <summary>Default SnapKV observation window (SnapKV uses 32 on prompts of thousands; budgets here are smaller).</summary>
    public const int DefaultObservation = 16;

    /// <summary>First positions always kept (attention sinks); 0 for plain windows.</summary>
    public int Sinks { get; }

    /// <summary>Most recent positions kept (the query's own included); null when every position is kept.</summary>
    public int? Window { get; }

    /// <summary>Whether positions are dropped by rule (<see cref="KvEviction.None"/>) or by attention scores.</summary>
    public KvEviction Eviction { get; }

    /// <summary>
    /// Score-based policies: the positions kept per layer and KV head (H2O: before each query, itself included;
    /// SnapKV: after each compressed prefill). Null otherwise.
    /// </summary>
    public int? EvictionBudget { get; }

    /// <summary>H2O: the most recent positions never evicted (default B / 2). 0 for other policies.</summary>
    public int Recent { get; }

    /// <summary>SnapKV: the last queries of a prefill that vote, and are kept (default min(16, B / 2), at least 1). 0 for other policies.</summary>
    public int Observation { get; }

    private KvCachePolicy(int sinks, int? window)
    {
        Sinks = sinks;
        Window = window;
    }

    private KvCachePolicy(KvEviction eviction, int budget, int recent, int observation)
    {
        Eviction = eviction;
        EvictionBudget = budget;
        Recent = recent;
        Observation = observation;
    }

    /// <summary>True for <see cref="Full"/>: the cache takes its plain path, untouched by any policy.</summary>
    public bool KeepsEverything => Window is null && Eviction == KvEviction.None;

    /// <summary>True for H2O and SnapKV: positions are chosen by attention scores, per layer and KV head.</summary>
    public bool EvictsByScore => Eviction != KvEviction.None;

    /// <summary>
    /// Why a sequence under this policy cannot share its blocks with parallel samples of the same prompt (null when
    /// it can): the engine and the server refuse several samples with this reason.
    /// </summary>
    public string? SingleSampleReason =>
        EvictsByScore ? "each layer and KV head reuses its evicted slots in place, in the blocks parallel samples would share"
        : Sinks > 0 ? "its sink keys are re-rotated in place, in the blocks parallel samples share"
        : null;

    /// <summary>Most positions one query attends to (sinks + window, or an H2O budget); null for <see cref="Full"/>.
    /// SnapKV's B bounds what a compressed prefill leaves; the prefill's own queries and later decode steps see more.</summary>
    public int? Budget => Window is int w ? Sinks + w : EvictionBudget;

    /// <summary>H2O with <paramref name="budget"/> positions, the last <paramref name="recent"/> (default B / 2) always among them.</summary>
    public static KvCachePolicy HeavyHitters(int budget, int? recent = null)
    {
        int r = recent ?? budget / 2;
        if (Problem(KvEviction.HeavyHitters, budget, r) is string why) throw new ArgumentOutOfRangeException(nameof(budget), budget, $"cache policy {DescribeScored(KvEviction.HeavyHitters, budget, r)}: {why}");
        return new KvCachePolicy(KvEviction.HeavyHitters, budget, r, 0);
    }

    /// <summary>SnapKV compressing each prefill to <paramref name="budget"/> positions by the votes of its last <paramref name="observation"/> queries.</summary>
    public static KvCachePolicy SnapKv(int budget, int? observation = null)
    {
        int o = observation ?? DefaultObservationOf(budget);
        if (Problem(KvEviction.SnapKv, budget, o) is string why) throw new ArgumentOutOfRangeException(nameof(budget), budget, $"cache policy {DescribeScored(KvEviction.SnapKv, budget, o)}: {why}");
        return new KvCachePolicy(KvEviction.SnapKv, budget, 0, o);
    }

    private static int DefaultObservationOf(int budget) => Math.Max(1, Math.Min(DefaultObservation, budget / 2));

    /// <summary>Why a score-based policy's numbers are wrong, or null.</summary>
    private static string? Problem(KvEviction eviction, int budget, int parameter)
    {
        if (budget < 1) return $"the budget must keep at least 1 position, got {budget}";
        if (eviction == KvEviction.HeavyHitters && (parameter < 0 || parameter >= budget))
            return $"recent must be 0 or more and less than the budget {budget} (recent = budget is window:{budget}), got {parameter}";
        if (eviction == KvEviction.SnapKv && (parameter < 1 || parameter > budget))
            return $"the observation window must be at least 1 and at most the budget {budget}, got {parameter}";
        return null;
    }

    /// <summary>
    /// The policy a model requires: its trained sliding window (<see cref="ModelConfig.SlidingWindow"/>) when that is
    /// shorter than <paramref name="contextLength"/> (else the window never slides), otherwise <see cref="Full"/>. A model
    /// whose layers alternate between a window and the whole context (Gemma 2/3) keeps everything: its windows are masks
    /// inside the attention of those layers.
    /// </summary>
    public static KvCachePolicy OfModel(ModelConfig config, int contextLength) =>
        !config.HasLayerWindows && config.SlidingWindow is int w && w < contextLength ? SlidingWindow(w) : Full;

    /// <summary>The last <paramref name="window"/> positions.</summary>
    public static KvCachePolicy SlidingWindow(int window) => SinksAndWindow(0, window);

    /// <summary>The first <paramref name="sinks"/> positions plus the last <paramref name="window"/>.</summary>
    public static KvCachePolicy SinksAndWindow(int sinks, int window)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, $"cache policy {Describe(sinks, window)}: the window must keep at least 1 position");
        if (sinks < 0) throw new ArgumentOutOfRangeException(nameof(sinks), sinks, $"cache policy {Describe(sinks, window)}: sinks must be 0 or more");
        return new KvCachePolicy(sinks, window);
    }

    /// <summary>The forms <see cref="Parse"/> reads, for messages and help.</summary>
    public const string Forms = "full, window:W, sinks:S+window:W, h2o:B[+recent:R] or snapkv:B[+obs:O]";

    /// <summary>
    /// Reads <c>full</c>, <c>window:W</c>, <c>sinks:S+window:W</c>, <c>h2o:B</c>, <c>h2o:B+recent:R</c>,
    /// <c>snapkv:B</c> or <c>snapkv:B+obs:O</c>.
    /// </summary>
    /// <exception cref="FormatException">The text is none of these, or W &lt; 1, or S &lt; 0, or B &lt; 1, or R not in
    /// [0, B), or O not in [1, B]; the message names the text.</exception>
    public static KvCachePolicy Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim().ToLowerInvariant();
        if (t == "full") return Full;
        string[] parts = t.Split('+');
        if (parts[0].StartsWith("h2o:", StringComparison.Ordinal)) return ParseScored(KvEviction.HeavyHitters, parts, "recent:", text);
        if (parts[0].StartsWith("snapkv:", StringComparison.Ordinal)) return ParseScored(KvEviction.SnapKv, parts, "obs:", text);
        int sinks = 0;
        string windowPart = parts[^1];
        if (parts.Length == 2) sinks = Number(parts[0], "sinks:", text);
        else if (parts.Length != 1) throw Bad(text, $"expected {Forms}");
        int window = Number(windowPart, "window:", text);
        if (window < 1) throw Bad(text, $"the window must keep at least 1 position, got {window}");
        if (sinks < 0) throw Bad(text, $"sinks must be 0 or more, got {sinks}");
        return new KvCachePolicy(sinks, window);
    }

    private static KvCachePolicy ParseScored(KvEviction eviction, string[] parts, string parameterPrefix, string text)
    {
        if (parts.Length > 2) throw Bad(text, $"expected {Forms}");
        string name = eviction == KvEviction.HeavyHitters ? "h2o:" : "snapkv:";
        int budget = Number(parts[0], name, text);
        int parameter = parts.Length == 2 ? Number(parts[1], parameterPrefix, text)
            : eviction == KvEviction.HeavyHitters ? budget / 2 : DefaultObservationOf(budget);
        if (Problem(eviction, budget, parameter) is string why) throw Bad(text, why);
        return eviction == KvEviction.HeavyHitters ? new KvCachePolicy(eviction, budget, parameter, 0) : new KvCachePolicy(eviction, budget, 0, parameter);
    }

    private static int Number(string part, string prefix, string text)
    {
        if (!part.StartsWith(prefix, StringComparison.Ordinal)
            || !int.TryParse(part.AsSpan(prefix.Length), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n))
            throw Bad(text, $"expected {Forms}, with whole numbers");
        return n;
    }

    private static FormatException Bad(string text, string why) => new($"cache policy '{text}': {why}");

    /// <summary>Checks that the policy fits a context of <paramref name="contextLength"/> positions.</summary>
    /// <exception cref="ArgumentException">The budget (sinks + window, or B) is larger than the context.</exception>
    public void Validate(int contextLength)
    {
        if (Budget is int b && b > contextLength)
            throw new ArgumentException($"cache policy '{this}' keeps {b} positions, more than the context length of {contextLength}");
    }

    /// <summary>
    /// The positions a query at <paramref name="queryPosition"/> attends to, in order (its own last); their index in
    /// this list is the position the cache assigns them.
    /// </summary>
    public int[] KeptPositions(int queryPosition)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queryPosition);
        if (EvictsByScore)
            throw new InvalidOperationException($"cache policy '{this}' keeps positions by their attention scores, not by a rule: ask the cache (KvCache.PositionsHeld)");
        if (Window is not int w) return Enumerable.Range(0, queryPosition + 1).ToArray();
        int sinks = Math.Min(Sinks, queryPosition + 1), windowStart = Math.Max(sinks, queryPosition - w + 1);
        return Enumerable.Range(0, sinks).Concat(Enumerable.Range(windowStart, queryPosition + 1 - windowStart)).ToArray();
    }

    public override string ToString() =>
        Window is int w ? Describe(Sinks, w) : EvictionBudget is int b ? DescribeScored(Eviction, b, Eviction == KvEviction.HeavyHitters ? Recent : Observation) : "full";

    /// <summary>h2o:B or snapkv:B, with the parameter only where it is not the default (so Parse(ToString()) round-trips).</summary>
    private static string DescribeScored(KvEviction eviction, int budget, int parameter) => eviction == KvEviction.HeavyHitters
        ? (parameter == budget / 2 ? $"h2o:{budget}" : $"h2o:{budget}+recent:{parameter}")
        : (parameter == DefaultObservationOf(budget) ? $"snapkv:{budget}" : $"snapkv:{budget}+obs:{parameter}");

    private static string Describe(int sinks, int window) => sinks == 0 ? $"window:{window}" : $"sinks:{sinks}+window:{window}";
}
