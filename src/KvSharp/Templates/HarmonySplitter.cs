using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace KvSharp.Templates;

/// <summary>A whole Harmony reply read: its reasoning (null when it had no analysis message), its answer and its tool calls.</summary>
public sealed record HarmonyReply(string? Reasoning, string Answer, IReadOnlyList<ChatToolCall> Calls);

/// <summary>
/// Reads a gpt-oss reply in OpenAI's Harmony format as it streams in. The prompt ends with <c>&lt;|start|&gt;assistant</c>;
/// the reply goes on with that message's header and then holds messages, each
/// <c>[&lt;|start|&gt;role][ to=RECIPIENT]&lt;|channel|&gt;CHANNEL[ to=RECIPIENT][ TYPE][&lt;|constrain|&gt;TYPE]&lt;|message|&gt;TEXT</c>
/// closed by <c>&lt;|end|&gt;</c>, or by <c>&lt;|return|&gt;</c> / <c>&lt;|call|&gt;</c> (which end generation, so
/// the text seldom shows them). An analysis message's text is reasoning, a final message's the answer, a message to a
/// recipient (<c>functions.NAME</c>) a tool call with JSON arguments, which come whole when the message ends
/// (<see cref="Calls"/>); a commentary message to no one (a preamble for the user) is answer too. A reply that does not
/// follow the format is answer: everything in it that is not a marker, never an error; so is a call whose arguments are
/// not a JSON object, and a header that names neither channel nor recipient (one cut short after naming a channel goes).
/// The markers never reach either side; one split across pieces is held back until it is whole.
/// </summary>
public sealed partial class HarmonySplitter : IReplySplitter
{
    public const string Start = "<|start|>", Channel = "<|channel|>", Message = "<|message|>", Constrain = "<|constrain|>",
        End = "<|end|>", Return = "<|return|>", Call = "<|call|>";

    private static readonly string[] Markers = [Start, Channel, Message, Constrain, End, Return, Call];
    // How the header of the reply's first message may begin, right after the prompt's "<|start|>assistant".
    private static readonly string[] Openings = [Channel, Constrain, " to="];

    private enum State { Opening, Header, Body }
    private enum Sink { Reasoning, Answer, Call }

    private State _state = State.Opening;
    private string _pending = "";
    private readonly StringBuilder _header = new();
    private Sink _sink = Sink.Answer;
    private string? _recipient;
    private readonly StringBuilder _arguments = new();
    private readonly List<ChatToolCall> _calls = [];
    // What the current Append or Flush gives out.
    private readonly StringBuilder _reasoning = new(), _answer = new();

    /// <summary>Whether replies after prompts of <paramref name="template"/> are Harmony messages (gpt-oss's templates).</summary>
    public static bool Applies(ChatTemplate template) =>
        template.Source.Contains(Channel, StringComparison.Ordinal) && template.Source.Contains(Message, StringComparison.Ordinal);

    /// <summary>Whether the reply has had an analysis message (a reply without one has no reasoning, not an empty one).</summary>
    public bool Reasoned { get; private set; }

    /// <summary>The tool calls of the messages ended so far (all of them after <see cref="Flush"/>).</summary>
    public IReadOnlyList<ChatToolCall> Calls => _calls;

    /// <summary>Reads a whole reply: its reasoning and answer, each trimmed, and its calls.</summary>
    public static HarmonyReply Split(string reply)
    {
        var splitter = new HarmonySplitter();
        var (r1, a1) = splitter.Append(reply);
        var (r2, a2) = splitter.Flush();
        return new HarmonyReply(splitter.Reasoned ? (r1 + r2).Trim() : null, (a1 + a2).Trim(), splitter.Calls);
    }

    public (string Reasoning, string Answer) Append(string text)
    {
        _pending += text;
        while (true)
        {
            if (_state == State.Opening)
            {
                if (Openings.Any(o => _pending.StartsWith(o, StringComparison.Ordinal))) _state = State.Header;
                else if (Openings.Any(o => o.StartsWith(_pending, StringComparison.Ordinal))) return Given();
                else _state = State.Body;
                continue;
            }
            var (at, marker) = FirstMarker(_pending);
            if (marker == null)
            {
                int keep = HeldBack(_pending);
                Take(_pending[..^keep]);
                _pending = _pending[^keep..];
                return Given();
            }
            Take(_pending[..at]);
            _pending = _pending[(at + marker.Length)..];
            OnMarker(marker);
        }
    }

    public (string Reasoning, string Answer) Flush()
    {
        string rest = _pending;
        _pending = "";
        if (_state == State.Opening) _state = State.Body;
        Take(rest);
        if (_state == State.Header) CutShort();
        EndMessage();
        return Given();
    }

    private void OnMarker(string marker)
    {
        if (_state == State.Header)
        {
            switch (marker)
            {
                case Message:
                    BeginMessage(_header.ToString());
                    _header.Clear();
                    _state = State.Body;
                    break;
                case End or Return or Call:
                    CutShort();
                    _state = State.Body;
                    _sink = Sink.Answer;
                    break;
                default:
                    // Kept in the header's text, where they tell the channel from the role and the type.
                    _header.Append(marker);
                    break;
            }
            return;
        }
        switch (marker)
        {
            case End or Return or Call:
                EndMessage();
                break;
            case Start or Channel or Constrain:
                EndMessage();
                _state = State.Header;
                if (marker != Start) _header.Append(marker);
                break;
            // A stray <|message|> in a message's text: dropped, as every marker is.
        }
    }

    /// <summary>Text read in the current state: a header's, or the current message's.</summary>
    private void Take(string text)
    {
        if (text.Length == 0) return;
        if (_state == State.Header) _header.Append(text);
        else (_sink switch { Sink.Reasoning => _reasoning, Sink.Call => _arguments, _ => _answer }).Append(text);
    }

    [GeneratedRegex(@"<\|channel\|>\s*(\w+)")]
    private static partial Regex ChannelName();

    [GeneratedRegex(@"(?:^|\s)to=([^\s<]+)")]
    private static partial Regex Recipient();

    /// <summary>Where the text of a message with this header goes.</summary>
    private void BeginMessage(string header)
    {
        var channel = ChannelName().Match(header);
        var recipient = Recipient().Match(header);
        _recipient = recipient.Success && recipient.Groups[1].Value != "assistant" ? recipient.Groups[1].Value : null;
        if (_recipient != null) _sink = Sink.Call;
        else if (channel.Success && channel.Groups[1].Value == "analysis")
        {
            _sink = Sink.Reasoning;
            Reasoned = true;
        }
        else
        {
            _sink = Sink.Answer;
            // Neither channel nor recipient: not a Harmony header, so its words are the answer's.
            if (!channel.Success) _answer.Append(Words(header));
        }
    }

    /// <summary>
    /// A header that no message followed (the reply ended, or a message end came first): one that had named a channel
    /// is the format cut short, and goes; one that had not is not the format, and its words are answer.
    /// </summary>
    private void CutShort()
    {
        string header = _header.ToString();
        _header.Clear();
        if (!header.Contains(Channel, StringComparison.Ordinal)) _answer.Append(Words(header));
    }

    /// <summary>A header's text without the markers it keeps.</summary>
    private static string Words(string header) => header.Replace(Channel, "", StringComparison.Ordinal).Replace(Constrain, "", StringComparison.Ordinal);

    /// <summary>Ends the current message: a call's arguments become a call, or answer text where they are not a JSON object.</summary>
    private void EndMessage()
    {
        if (_sink == Sink.Call)
        {
            string arguments = _arguments.ToString().Trim();
            if (JsonObject(arguments) is { } json)
                _calls.Add(new ChatToolCall(ToolCallSyntax.FreshId(), _recipient!.StartsWith("functions.", StringComparison.Ordinal) ? _recipient["functions.".Length..] : _recipient!, json));
            else _answer.Append(_arguments);
            _arguments.Clear();
            _recipient = null;
        }
        // Text after a message's end and before the next header belongs to no message: answer.
        _sink = Sink.Answer;
    }

    private static string? JsonObject(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.ValueKind == JsonValueKind.Object ? doc.RootElement.GetRawText() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>What this Append or Flush gives out, and the buffers emptied for the next.</summary>
    private (string Reasoning, string Answer) Given()
    {
        var given = (_reasoning.ToString(), _answer.ToString());
        _reasoning.Clear();
        _answer.Clear();
        return given;
    }

    private static (int At, string? Marker) FirstMarker(string text)
    {
        int at = -1;
        string? found = null;
        foreach (string m in Markers)
        {
            int i = text.IndexOf(m, StringComparison.Ordinal);
            if (i >= 0 && (at < 0 || i < at)) (at, found) = (i, m);
        }
        return (at, found);
    }

    /// <summary>The longest end of <paramref name="text"/> that could be the start of a marker.</summary>
    private static int HeldBack(string text)
    {
        int start = text.LastIndexOf('<');
        if (start < 0) return 0;
        string tail = text[start..];
        return Markers.Any(m => m.Length > tail.Length && m.StartsWith(tail, StringComparison.Ordinal)) ? tail.Length : 0;
    }
}
