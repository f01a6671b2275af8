namespace KvSharp.Templates;

/// <summary>
/// How the reply after a template's prompt comes apart into reasoning and answer: at think tags, starting inside a
/// block or not (<see cref="ReasoningSplitter"/>), or as Harmony messages (<see cref="HarmonySplitter"/>).
/// </summary>
public sealed class ReplySplitting
{
    // Think tags: whether the reply starts inside a block; null for Harmony.
    private readonly bool? _startsInside;

    private ReplySplitting(bool? startsInside) => _startsInside = startsInside;

    /// <summary>How replies after <paramref name="prompt"/> (rendered by <paramref name="template"/>) split; null where they are all answer.</summary>
    public static ReplySplitting? Of(ChatTemplate template, string prompt)
    {
        ArgumentNullException.ThrowIfNull(template);
        if (HarmonySplitter.Applies(template)) return new ReplySplitting(null);
        return ReasoningSplitter.Applies(template) ? new ReplySplitting(ReasoningSplitter.PromptOpensThinking(prompt)) : null;
    }

    /// <summary>
    /// Harmony messages: the format, not a block in text, so they are read whatever reasoning format is asked for, and
    /// their tool-call syntax reads the reasoning itself.
    /// </summary>
    public bool IsHarmony => _startsInside == null;

    /// <summary>A splitter for one streamed reply.</summary>
    public IReplySplitter Start() => _startsInside is bool inside ? new ReasoningSplitter(inside) : new HarmonySplitter();

    /// <summary>
    /// A whole reply as the assistant's turn a conversation keeps: its answer as the content and its reasoning apart,
    /// as templates expect them back (gpt-oss's refuses Harmony markers in a turn's content).
    /// </summary>
    public ChatMessage Assistant(string reply)
    {
        var (reasoning, answer) = Split(reply);
        return ChatMessage.Assistant(answer) with { Reasoning = reasoning };
    }

    /// <summary>A whole reply's reasoning (null when it had none) and answer.</summary>
    public (string? Reasoning, string Answer) Split(string reply)
    {
        if (_startsInside is bool inside) return ReasoningSplitter.Split(reply, inside);
        var read = HarmonySplitter.Split(reply);
        return (read.Reasoning, read.Answer);
    }
}
