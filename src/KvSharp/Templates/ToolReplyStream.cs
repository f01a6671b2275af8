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
/// <para>
/// A call streams too, in a syntax whose arguments are a JSON object the model writes inline
/// (<see cref="ToolCallSyntax.CallsSoFar"/>): once its name is whole and its arguments have begun, a delta with its id
/// and name, then their raw text as it comes (<see cref="TakeCallDeltas"/>), which is what the whole reading keeps. Only
/// the whole reading says whether it was a call (a JSON object may still go wrong, text may follow where none may);
/// waiting for that certainty would be waiting for the end, so the calls stream on the likely reading and
/// <see cref="FinishCalls"/> checks it against the whole one: where they disagree it says so, and the caller ends the
/// reply with an error rather than with calls that do not add up.
/// </para>
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
    // The calls streamed so far (their ids, names and the arguments' text sent), and the deltas not taken yet.
    private readonly List<(string Id, string Name, string Arguments)> _calls = [];
    private readonly List<ToolCallDelta> _callDeltas = [];
    // The answer grew since its calls were last read: they are read when the deltas are taken (StreamCalls), so a
    // caller that never takes them (the IChatClient, whose calls come whole) does not read the reply for them per piece.
    private bool _callsUnread;
    private readonly int _maxCalls;

    /// <param name="syntax">How the template's model writes calls.</param>
    /// <param name="reasoning">How the reply's thinking goes apart (null: it does not).</param>
    /// <param name="forced">
    /// The call the reply must be (its opening is in the prompt; null: none): no text is shown before it ends, and the
    /// call is read for streaming after its opening, as the whole reading reads it.
    /// </param>
    /// <param name="maxCalls">The most calls the reply may make (<see cref="ToolCallSyntax.ReadCalls"/>'s): later ones do not stream.</param>
    public ToolReplyStream(ToolCallSyntax syntax, ReplySplitting? reasoning, ForcedToolCall? forced = null, int maxCalls = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCalls, 1);
        _maxCalls = maxCalls;
        _syntax = syntax ?? throw new ArgumentNullException(nameof(syntax));
        _splitter = reasoning?.Start();
        _answerIsText = reasoning is { IsHarmony: true };
        _held = forced != null;
        _answer.Append(forced?.Opening);
    }

    /// <summary>What has been shown of the reasoning so far.</summary>
    public string ShownReasoning => _shownReasoning.ToString();

    /// <summary>What has been shown of the text so far.</summary>
    public string ShownContent => _shownContent.ToString();

    /// <summary>
    /// A token was generated: a special token that the reply's text does not show (a call marker may be one, and the
    /// whole reading will see it) holds all text after it until the end. Returns that token's rendered text, which a
    /// caller that can put it in its place among the pieces it appends passes on, so that a call it opens still
    /// streams (else ""; the end of generation is no marker).
    /// </summary>
    public string Generated(ITokenizer tokenizer, int token)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!tokenizer.TokenPiece(token).IsEmpty || tokenizer.IsEndOfGeneration(token)) return "";
        var rendered = tokenizer.TokenPiece(token, renderSpecial: true);
        if (rendered.IsEmpty) return "";
        _held = true;
        return Encoding.UTF8.GetString(rendered);
    }

    /// <summary>
    /// The next piece of the reply's text: what of it can be shown now, as reasoning and as text. Held text is still
    /// read for calls.
    /// </summary>
    public (string Reasoning, string Content) Append(string text)
    {
        if (text.Length == 0) return ("", "");
        var (thought, answer) = _splitter?.Append(text) ?? ("", text);
        if (!_held) return (ShowReasoning(thought), ShowAnswer(answer));
        _answer.Append(answer);
        if (answer.Length > 0) _callsUnread = true;
        return ("", "");
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
        _callsUnread = true;
        int end = _answerIsText ? all.Length : Math.Min(_syntax.TextBefore(all), all.Length);
        while (end > _answerShown && char.IsWhiteSpace(all[end - 1])) end--;
        if (end <= _answerShown) return "";
        string shown = all[_answerShown..end];
        _answerShown = end;
        _shownContent.Append(shown);
        return shown;
    }

    /// <summary>
    /// The calls written so far, past what was streamed of them: a new call goes out once its name is whole and its
    /// arguments have begun, then its arguments' text as it comes. A call whose text stops extending what was sent
    /// streams no further, and the whole reading settles it (<see cref="FinishCalls"/>). The answer is read from its
    /// start each time: a reply with tools is short, and its text is already joined whole for each piece.
    /// </summary>
    private void StreamCalls(string answer)
    {
        if (_syntax.CallsSoFar(answer) is not { } calls) return;
        for (int i = 0; i < Math.Min(calls.Count, _maxCalls); i++)
        {
            var call = calls[i];
            if (i == _calls.Count)
            {
                if (string.IsNullOrEmpty(call.Name) || call.ArgumentsAt < 0) return;
                _calls.Add((_syntax.StreamedCallId(), call.Name, ""));
                _callDeltas.Add(new ToolCallDelta(i, _calls[i].Id, call.Name, ""));
            }
            var (id, name, sent) = _calls[i];
            string arguments = call.Arguments(answer);
            if (name != call.Name || !arguments.StartsWith(sent, StringComparison.Ordinal)) return;
            if (arguments.Length == sent.Length) continue;
            _callDeltas.Add(new ToolCallDelta(i, null, null, arguments[sent.Length..]));
            _calls[i] = (id, name, arguments);
        }
    }

    /// <summary>
    /// The calls' deltas that the text appended so far gives and that were not taken yet, in order. A caller that
    /// streams calls takes them after every <see cref="Append"/>.
    /// </summary>
    public IReadOnlyList<ToolCallDelta> TakeCallDeltas()
    {
        if (_callsUnread && !_answerIsText) StreamCalls(_answer.ToString());
        _callsUnread = false;
        if (_callDeltas.Count == 0) return [];
        ToolCallDelta[] taken = [.. _callDeltas];
        _callDeltas.Clear();
        return taken;
    }

    /// <summary>
    /// The reply has ended and its whole reading made <paramref name="calls"/>: the deltas that finish them after those
    /// not taken yet (the rest of each streamed call's arguments, then each call that did not stream, whole); null
    /// where the reading disagrees with what was streamed (it makes fewer calls, or one with another name, or arguments
    /// that do not begin with the text sent). What was sent cannot be taken back, so the caller must then say the
    /// reply went wrong rather than send calls that do not add up.
    /// </summary>
    public IReadOnlyList<ToolCallDelta>? FinishCalls(IReadOnlyList<ChatToolCall> calls)
    {
        ArgumentNullException.ThrowIfNull(calls);
        if (calls.Count < _calls.Count) return null;
        var deltas = new List<ToolCallDelta>(TakeCallDeltas());
        for (int i = 0; i < calls.Count; i++)
        {
            var call = calls[i];
            if (i >= _calls.Count)
            {
                deltas.Add(new ToolCallDelta(i, call.Id, call.Name, call.Arguments));
                continue;
            }
            var (_, name, sent) = _calls[i];
            if (call.Name != name || !call.Arguments.StartsWith(sent, StringComparison.Ordinal)) return null;
            if (call.Arguments.Length > sent.Length) deltas.Add(new ToolCallDelta(i, null, null, call.Arguments[sent.Length..]));
        }
        return deltas;
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
