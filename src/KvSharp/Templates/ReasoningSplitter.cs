namespace KvSharp.Templates;

/// <summary>
/// Splits a reply of a model that thinks aloud (Qwen3, QwQ, DeepSeek R1 and its distills, GLM-4.5/4.6: templates that
/// write <c>&lt;think&gt;...&lt;/think&gt;</c>) into its reasoning and its answer as the text streams in, as llama-server's
/// reasoning_format "deepseek" does: a reply that opens with <c>&lt;think&gt;</c> (or whose prompt the template ended
/// inside one) gives what comes before <c>&lt;/think&gt;</c> as reasoning and the rest, leading whitespace dropped, as the
/// answer; any other reply is all answer. A tag split across pieces is held back until it is whole.
/// </summary>
public sealed class ReasoningSplitter : IReplySplitter
{
    public const string Open = "<think>", Close = "</think>";

    private enum State { Before, Inside, AfterClose, Answer }

    private State _state;
    private string _pending = "";
    // Whether the reply has had a think block (a reply without one has no reasoning, not an empty one).
    private bool _thought;

    /// <param name="startsInside">The prompt ends inside a think block (the template opened it): the reply starts as reasoning.</param>
    public ReasoningSplitter(bool startsInside)
    {
        _state = startsInside ? State.Inside : State.Before;
        _thought = startsInside;
    }

    /// <summary>Whether replies after prompts of <paramref name="template"/> may think aloud in tags.</summary>
    public static bool Applies(ChatTemplate template) =>
        template.Source.Contains(Open, StringComparison.Ordinal) && template.Source.Contains(Close, StringComparison.Ordinal);

    /// <summary>Whether the rendered <paramref name="prompt"/> leaves the reply inside a think block the template opened.</summary>
    public static bool PromptOpensThinking(string prompt) => prompt.TrimEnd().EndsWith(Open, StringComparison.Ordinal);

    /// <summary>Splits a whole reply: its reasoning and its answer, each trimmed (null reasoning when it had none).</summary>
    public static (string? Reasoning, string Answer) Split(string reply, bool startsInside)
    {
        var splitter = new ReasoningSplitter(startsInside);
        var (r1, a1) = splitter.Append(reply);
        var (r2, a2) = splitter.Flush();
        return splitter._thought ? ((r1 + r2).Trim(), (a1 + a2).Trim()) : (null, reply);
    }

    /// <summary>The next piece of the reply: what of it is reasoning and what is answer, as far as it can tell yet.</summary>
    public (string Reasoning, string Answer) Append(string text)
    {
        _pending += text;
        string reasoning = "", answer = "";
        while (true)
        {
            switch (_state)
            {
                case State.Before:
                {
                    string s = _pending.TrimStart();
                    if (s.Length < Open.Length && Open.StartsWith(s, StringComparison.Ordinal)) return (reasoning, answer);
                    if (s.StartsWith(Open, StringComparison.Ordinal))
                    {
                        _pending = s[Open.Length..];
                        _state = State.Inside;
                        _thought = true;
                        continue;
                    }
                    _state = State.Answer;
                    continue;
                }
                case State.Inside:
                {
                    int close = _pending.IndexOf(Close, StringComparison.Ordinal);
                    if (close >= 0)
                    {
                        reasoning += _pending[..close];
                        _pending = _pending[(close + Close.Length)..];
                        _state = State.AfterClose;
                        continue;
                    }
                    int keep = HeldBack(_pending);
                    reasoning += _pending[..^keep];
                    _pending = _pending[^keep..];
                    return (reasoning, answer);
                }
                case State.AfterClose:
                {
                    _pending = _pending.TrimStart();
                    if (_pending.Length == 0) return (reasoning, answer);
                    _state = State.Answer;
                    continue;
                }
                default:
                    answer += _pending;
                    _pending = "";
                    return (reasoning, answer);
            }
        }
    }

    /// <summary>What is still held back when the reply ends.</summary>
    public (string Reasoning, string Answer) Flush()
    {
        string rest = _pending;
        _pending = "";
        return _state switch
        {
            State.Inside => (rest, ""),
            State.AfterClose => ("", ""),
            _ => ("", rest),
        };
    }

    /// <summary>The longest end of <paramref name="text"/> that could be the start of the closing tag.</summary>
    private static int HeldBack(string text)
    {
        for (int n = Math.Min(Close.Length - 1, text.Length); n > 0; n--)
            if (Close.StartsWith(text[^n..], StringComparison.Ordinal)) return n;
        return 0;
    }
}
