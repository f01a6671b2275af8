using System.Globalization;
using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>
/// Which positions of a sequence its cache keeps, chosen per sequence:
/// <list type="bullet">
/// <item><c>full</c>: every position (the default; the cache grows to the context length).</item>
/// <item><c>window:W</c>: the last W positions (a sliding window), held in a ring buffer of O(W) rows.</item>
/// <item><c>sinks:S+window:W</c> (StreamingLLM): the first S positions (the attention sinks) plus the last W.</item>
/// </list>
/// A query at position p attends to <see cref="KeptPositions"/>(p), at the positions the cache assigns them: the
/// kept positions in order, numbered from 0 (sinks first, then the window), the query the last of them. The
/// sequence can grow past the model's trained length while no distance the model sees exceeds the budget.
/// </summary>
public sealed record KvCachePolicy
{
    /// <summary>Keeps every position.</summary>
    public static KvCachePolicy Full { get; } = new(0, null);

    /// <summary>First positions always kept (attention sinks); 0 for plain windows.</summary>
    public int Sinks { get; }

    /// <summary>Most recent positions kept (the query's own included); null when every position is kept.</summary>
    public int? Window { get; }

    private KvCachePolicy(int sinks, int? window)
    {
        Sinks = sinks;
        Window = window;
    }

    /// <summary>True for <see cref="Full"/>: the cache takes its plain path, untouched by any policy.</summary>
    public bool KeepsEverything => Window is null;

    /// <summary>Most positions one query attends to (sinks + window); null for <see cref="Full"/>.</summary>
    public int? Budget => Window is int w ? Sinks + w : null;

    /// <summary>
    /// The policy a model requires: its trained sliding window (<see cref="ModelConfig.SlidingWindow"/>) when that is
    /// shorter than <paramref name="contextLength"/> (else the window never slides), otherwise <see cref="Full"/>.
    /// </summary>
    public static KvCachePolicy OfModel(ModelConfig config, int contextLength) =>
        config.SlidingWindow is int w && w < contextLength ? SlidingWindow(w) : Full;

    /// <summary>The last <paramref name="window"/> positions.</summary>
    public static KvCachePolicy SlidingWindow(int window) => SinksAndWindow(0, window);

    /// <summary>The first <paramref name="sinks"/> positions plus the last <paramref name="window"/>.</summary>
    public static KvCachePolicy SinksAndWindow(int sinks, int window)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, $"cache policy {Describe(sinks, window)}: the window must keep at least 1 position");
        if (sinks < 0) throw new ArgumentOutOfRangeException(nameof(sinks), sinks, $"cache policy {Describe(sinks, window)}: sinks must be 0 or more");
        return new KvCachePolicy(sinks, window);
    }

    /// <summary>
    /// Reads <c>full</c>, <c>window:W</c> or <c>sinks:S+window:W</c>.
    /// </summary>
    /// <exception cref="FormatException">The text is none of these, or W &lt; 1, or S &lt; 0; the message names the text.</exception>
    public static KvCachePolicy Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim().ToLowerInvariant();
        if (t == "full") return Full;
        string[] parts = t.Split('+');
        int sinks = 0;
        string windowPart = parts[^1];
        if (parts.Length == 2) sinks = Number(parts[0], "sinks:", text);
        else if (parts.Length != 1) throw Bad(text, "expected full, window:W or sinks:S+window:W");
        int window = Number(windowPart, "window:", text);
        if (window < 1) throw Bad(text, $"the window must keep at least 1 position, got {window}");
        if (sinks < 0) throw Bad(text, $"sinks must be 0 or more, got {sinks}");
        return new KvCachePolicy(sinks, window);
    }

    private static int Number(string part, string prefix, string text)
    {
        if (!part.StartsWith(prefix, StringComparison.Ordinal)
            || !int.TryParse(part.AsSpan(prefix.Length), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n))
            throw Bad(text, "expected full, window:W or sinks:S+window:W with whole numbers S and W");
        return n;
    }

    private static FormatException Bad(string text, string why) => new($"cache policy '{text}': {why}");

    /// <summary>Checks that the policy fits a context of <paramref name="contextLength"/> positions.</summary>
    /// <exception cref="ArgumentException">The budget (sinks + window) is larger than the context.</exception>
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
        if (Window is not int w) return Enumerable.Range(0, queryPosition + 1).ToArray();
        int sinks = Math.Min(Sinks, queryPosition + 1), windowStart = Math.Max(sinks, queryPosition - w + 1);
        return Enumerable.Range(0, sinks).Concat(Enumerable.Range(windowStart, queryPosition + 1 - windowStart)).ToArray();
    }

    public override string ToString() => Window is int w ? Describe(Sinks, w) : "full";

    private static string Describe(int sinks, int window) => sinks == 0 ? $"window:{window}" : $"sinks:{sinks}+window:{window}";
}
