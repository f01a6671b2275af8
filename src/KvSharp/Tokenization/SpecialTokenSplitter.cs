namespace KvSharp.Tokenization;

/// <summary>
/// Cuts special tokens' text out of the input before normal tokenization, as llama.cpp's
/// tokenizer_st_partition does: every control, user-defined and unknown token is a candidate, tried longest
/// text first; each one splits all remaining raw-text fragments at every occurrence. Control and unknown
/// tokens are only matched when parseSpecial is on; user-defined tokens are always matched (HF tokenizers
/// treat added tokens that way). Inside literal ranges (a chat template's message content) control and unknown tokens
/// are never matched, as if parseSpecial were off there: an occurrence that overlaps one stays plain text, so what a
/// user types cannot become a control token.
/// </summary>
internal sealed class SpecialTokenSplitter
{
    private readonly (int Id, string Text, bool NeedsParseSpecial)[] _candidates;

    public SpecialTokenSplitter(string[] tokens, TokenType[] types)
    {
        var list = new List<(int Id, string Text, bool NeedsParseSpecial)>();
        for (int id = 0; id < tokens.Length; id++)
        {
            var t = types[id];
            if (t is TokenType.Control or TokenType.UserDefined or TokenType.Unknown && tokens[id].Length > 0)
                list.Add((id, tokens[id], t != TokenType.UserDefined));
        }
        // Longest first so "<|im_start|>" wins over a shorter token that is its prefix; ties by id for determinism.
        list.Sort((a, b) => a.Text.Length != b.Text.Length ? b.Text.Length.CompareTo(a.Text.Length) : a.Id.CompareTo(b.Id));
        _candidates = list.ToArray();
    }

    public bool HasCandidates => _candidates.Length > 0;

    /// <param name="literal">Sorted, non-overlapping ranges of <paramref name="text"/> where no special token may match.</param>
    public List<TextFragment> Split(string text, bool parseSpecial, IReadOnlyList<TextRange> literal)
    {
        var fragments = new List<TextFragment> { TextFragment.Text(0, text.Length) };
        if (_candidates.Length == 0) return fragments;
        var next = new List<TextFragment>();
        foreach (var (id, tokenText, needsParseSpecial) in _candidates)
        {
            if (needsParseSpecial && !parseSpecial) continue;
            // Cheap whole-text check first: most candidates do not occur at all.
            if (!text.Contains(tokenText, StringComparison.Ordinal)) continue;
            next.Clear();
            foreach (var f in fragments)
            {
                if (f.IsToken) { next.Add(f); continue; }
                int start = f.Start, end = f.Start + f.Length;
                int from = start; // where the next search begins; text before it but after start is still unsplit
                while (from < end)
                {
                    int hit = text.AsSpan(from, end - from).IndexOf(tokenText, StringComparison.Ordinal);
                    if (hit < 0) break;
                    hit += from;
                    // Literal text reads as with parseSpecial off: no control token, user-defined tokens as always.
                    if (needsParseSpecial && Overlaps(literal, hit, tokenText.Length)) { from = hit + 1; continue; }
                    if (hit > start) next.Add(TextFragment.Text(start, hit - start));
                    next.Add(TextFragment.Token(id));
                    start = from = hit + tokenText.Length;
                }
                if (start < end) next.Add(TextFragment.Text(start, end - start));
            }
            (fragments, next) = (next, fragments);
        }
        return fragments;
    }

    /// <summary>Whether [start, start + length) shares a character with any of the sorted ranges (binary search).</summary>
    private static bool Overlaps(IReadOnlyList<TextRange> ranges, int start, int length)
    {
        int lo = 0, hi = ranges.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var r = ranges[mid];
            if (r.End <= start) lo = mid + 1;
            else if (r.Start >= start + length) hi = mid - 1;
            else return true;
        }
        return false;
    }
}
