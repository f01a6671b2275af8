namespace KvSharp.Engine;

/// <summary>
/// Streams text while watching for stop strings: text that might be the start of a stop string is held back
/// until it is known not to be one, so a stop string split across tokens is never partly emitted.
/// </summary>
internal sealed class StopStringMatcher
{
    private readonly IReadOnlyList<string> _stops;
    private string _pending = "";

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        foreach (var s in stops)
            if (string.IsNullOrEmpty(s)) throw new ArgumentException("stop strings must not be empty");
        _stops = stops;
    }

    /// <summary>Adds text; returns what can be emitted now, and whether a stop string was reached.</summary>
    public (string Emit, bool Stopped) Append(string text)
    {
        if (_stops.Count == 0) return (text, false);
        _pending += text;
        int first = -1;
        foreach (var s in _stops)
        {
            int i = _pending.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        if (first >= 0)
        {
            string before = _pending[..first];
            _pending = "";
            return (before, true);
        }
        int hold = 0;
        foreach (var s in _stops)
            for (int len = Math.Min(s.Length - 1, _pending.Length); len > hold; len--)
                if (_pending.AsSpan(_pending.Length - len).SequenceEqual(s.AsSpan(0, len))) { hold = len; break; }
        string emit = _pending[..^hold];
        _pending = _pending[^hold..];
        return (emit, false);
    }

    /// <summary>Whatever is still held back (called when generation ends for another reason).</summary>
    public string Flush()
    {
        string rest = _pending;
        _pending = "";
        return rest;
    }
}
