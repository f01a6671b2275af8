namespace KvSharp.Evaluation;

/// <summary>
/// A stretch of the text that runs in one cache: the text's tokens from <see cref="TextStart"/>, after a BOS when the
/// model expects one and the stretch does not start with it, so every window starts as the model was trained to.
/// Token i of the window (i &gt;= 1) is scored as the prediction from tokens 0..i-1, except a BOS: it marks a new
/// piece of text, which nothing before it predicts. So every token of the text but its BOS markers is scored exactly
/// once, whatever the windows.
/// </summary>
internal sealed class EvalWindow
{
    private readonly int? _bos;

    public int[] Tokens { get; }
    public int TextStart { get; }
    /// <summary>Whether the window starts with a BOS that is not part of the text.</summary>
    public bool AddedBos { get; }

    private EvalWindow(int[] tokens, int textStart, bool addedBos, int? bos)
    {
        Tokens = tokens;
        TextStart = textStart;
        AddedBos = addedBos;
        _bos = bos;
    }

    /// <summary>The index in the text of window token <paramref name="i"/> (not the added BOS).</summary>
    public int TextIndex(int i) => TextStart + i - (AddedBos ? 1 : 0);

    public bool IsScored(int i) => i >= 1 && i < Tokens.Length && Tokens[i] != _bos;

    /// <summary>
    /// Consecutive windows of at most <paramref name="context"/> tokens covering the whole text.
    /// <paramref name="bos"/>: the model's BOS, or null for a model that starts without one.
    /// </summary>
    public static List<EvalWindow> Split(IReadOnlyList<int> text, int context, int? bos)
    {
        if (context < 2) throw new ArgumentOutOfRangeException(nameof(context), context, "an evaluation window needs at least 2 tokens");
        var windows = new List<EvalWindow>();
        for (int start = 0; start < text.Count;)
        {
            bool add = bos is int b && text[start] != b;
            int take = Math.Min(text.Count - start, context - (add ? 1 : 0));
            var tokens = new int[take + (add ? 1 : 0)];
            if (add) tokens[0] = bos!.Value;
            for (int i = 0; i < take; i++) tokens[i + (add ? 1 : 0)] = text[start + i];
            windows.Add(new EvalWindow(tokens, start, add, bos));
            start += take;
        }
        return windows;
    }
}
