using System.Text;
using KvSharp.Tokenization;

namespace KvSharp.Templates;

/// <summary>
/// A reply to a request with tools, shown while it streams. Its reasoning (where the template's model thinks) and its
/// text up to the first place a call could begin go out as they arrive; from there on (a marker the syntax writes, a
/// special token the text does not show, a reply that is a call only as a whole and begins like one) the rest is held
/// until the reply ends. Then the reply is read whole for its calls, exactly as a reply that is not streamed is, and
/// <see cref="Finish"/> gives what of that reading was not shown yet. Whitespace at the end of what could be shown is
/// held too, since a reply with calls has its text trimmed; so the pieces shown add up to the reading of the whole
/// reply (with at most the whitespace it began with in front).
/// </summary>
public sealed class ToolReplyStream
{
    private readonly ToolCallSyntax _syntax;
    private readonly IReplySplitter? _splitter;
    // A Harmony splitter keeps the calls out of the answer itself, so its answer is all text.
    private readonly bool _answerIsText;
    private readonly StringBuilder _answer = new();
    private readonly StringBuilder _shownReasoning = new(), _shownContent = new();
    private int _answerShown;
    // Whitespace at the end of the reasoning so far: shown once more reasoning follows it (the whole reading trims it).
    private string _reasoningHeld = "";
    private bool _held;

    /// <param name="syntax">How the template's model writes calls.</param>
    /// <param name="reasoning">How the reply's thinking goes apart (null: it does not).</param>
    /// <param name="forced">
    /// The reply must be a call (its opening is in the prompt): nothing is shown before it ends.
    /// </param>
    public ToolReplyStream(ToolCallSyntax syntax, ReplySplitting? reasoning, bool forced = false)
    {
        _syntax = syntax ?? throw new ArgumentNullException(nameof(syntax));
        _splitter = reasoning?.Start();
        _answerIsText = reasoning is { IsHarmony: true };
        _held = forced;
    }

    /// <summary>What has been shown of the reasoning so far.</summary>
    public string ShownReasoning => _shownReasoning.ToString();

    /// <summary>What has been shown of the text so far.</summary>
    public string ShownContent => _shownContent.ToString();

    /// <summary>
    /// A token was generated: a special token that the reply's text does not show (a call marker may be one, and the
    /// whole reading will see it) holds everything after it until the end.
    /// </summary>
    public void Generated(ITokenizer tokenizer, int token)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!_held && tokenizer.TokenPiece(token).IsEmpty && !tokenizer.TokenPiece(token, renderSpecial: true).IsEmpty && !tokenizer.IsEndOfGeneration(token))
            _held = true;
    }

    /// <summary>The next piece of the reply's text: what of it can be shown now, as reasoning and as text.</summary>
    public (string Reasoning, string Content) Append(string text)
    {
        if (_held || text.Length == 0) return ("", "");
        var (thought, answer) = _splitter?.Append(text) ?? ("", text);
        return (ShowReasoning(thought), ShowAnswer(answer));
    }

    private string ShowReasoning(string thought)
    {
        if (thought.Length == 0) return "";
        string pending = _reasoningHeld + thought, shown = pending.TrimEnd();
        _reasoningHeld = pending[shown.Length..];
        _shownReasoning.Append(shown);
        return shown;
    }

    private string ShowAnswer(string answer)
    {
        _answer.Append(answer);
        if (answer.Length == 0) return "";
        string all = _answer.ToString();
        int end = _answerIsText ? all.Length : Math.Min(_syntax.TextBefore(all), all.Length);
        while (end > _answerShown && char.IsWhiteSpace(all[end - 1])) end--;
        if (end <= _answerShown) return "";
        string shown = all[_answerShown..end];
        _answerShown = end;
        _shownContent.Append(shown);
        return shown;
    }

    /// <summary>
    /// The reply has ended and was read whole (<paramref name="reasoning"/>: its reasoning, null if none;
    /// <paramref name="content"/>: its text outside the calls): what of each was not shown yet.
    /// </summary>
    public (string Reasoning, string Content) Finish(string? reasoning, string content) =>
        (Rest(ShownReasoning, reasoning ?? ""), Rest(ShownContent, content));

    /// <summary>
    /// What follows <paramref name="shown"/> in <paramref name="whole"/>: the shown text is where the whole begins, but
    /// for whitespace it began with that the whole's reading trimmed.
    /// </summary>
    internal static string Rest(string shown, string whole)
    {
        if (whole.StartsWith(shown, StringComparison.Ordinal)) return whole[shown.Length..];
        string trimmed = shown.TrimStart();
        if (whole.StartsWith(trimmed, StringComparison.Ordinal)) return whole[trimmed.Length..];
        // Not reached where the reading agrees with the pieces (the tests hold every syntax to that); if it ever did
        // not, what was shown cannot be taken back, so the rest starts where the two part.
        int common = 0;
        while (common < trimmed.Length && common < whole.Length && trimmed[common] == whole[common]) common++;
        return whole[common..];
    }
}
