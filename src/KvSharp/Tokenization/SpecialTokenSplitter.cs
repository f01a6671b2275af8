namespace KvSharp.Tokenization;

/// <summary>
/// Cuts special tokens' text out of the input before normal tokenization, as llama.cpp's
/// tokenizer_st_partition does: every control, user-defined and unknown token is a candidate, tried longest
/// text first; each one splits all remaining raw-text fragments at every occurrence. Control and unknown
/// tokens are only matched when parseSpecial is on; user-defined tokens are always matched (HF tokenizers
/// treat added tokens that way).
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

    public List<TextFragment> Split(string text, bool parseSpecial)
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
                while (start < end)
                {
                    int hit = text.AsSpan(start, end - start).IndexOf(tokenText, StringComparison.Ordinal);
                    if (hit < 0) break;
                    if (hit > 0) next.Add(TextFragment.Text(start, hit));
                    next.Add(TextFragment.Token(id));
                    start += hit + tokenText.Length;
                }
                if (start < end) next.Add(TextFragment.Text(start, end - start));
            }
            (fragments, next) = (next, fragments);
        }
        return fragments;
    }
}
