using KvSharp.Tokenization;

namespace KvSharp.Templates;

/// <summary>
/// A conversation rendered by a <see cref="ChatTemplate"/>: the text, and which of its characters came from the
/// messages (<see cref="ContentRanges"/>). <see cref="Tokenize"/> parses the template's own special-token text as
/// special tokens but never the content's, so text a user types cannot forge a role switch.
/// </summary>
public sealed class RenderedChat
{
    internal RenderedChat(string text, IReadOnlyList<TextRange> contentRanges, string bosToken, string eosToken)
    {
        Text = text;
        ContentRanges = contentRanges;
        BosToken = bosToken;
        EosToken = eosToken;
    }

    /// <summary>The template's output exactly as Jinja2 renders it.</summary>
    public string Text { get; }
    /// <summary>Sorted, non-overlapping ranges of <see cref="Text"/> that came from message content (and the extra variables).</summary>
    public IReadOnlyList<TextRange> ContentRanges { get; }
    public string BosToken { get; }
    public string EosToken { get; }

    /// <summary>
    /// The prompt as llama.cpp makes it from the rendering (what llama-server's /apply-template returns): a BOS text
    /// at the start and an EOS text at the end are dropped, because tokenizing adds BOS (and EOS) as the model's
    /// metadata says and must not add them twice.
    /// </summary>
    public string Prompt => Text[PromptStart..PromptEnd];

    private int PromptStart => BosToken.Length > 0 && Text.StartsWith(BosToken, StringComparison.Ordinal) ? BosToken.Length : 0;

    private int PromptEnd => EosToken.Length > 0 && Text.Length - EosToken.Length >= PromptStart && Text.EndsWith(EosToken, StringComparison.Ordinal)
        ? Text.Length - EosToken.Length : Text.Length;

    /// <summary>
    /// The prompt's token ids, as llama.cpp tokenizes a chat prompt (add_special = true, parse_special = true),
    /// except that special-token text inside message content stays plain text. When no content holds special-token
    /// text, the ids equal llama.cpp's.
    /// </summary>
    public int[] Tokenize(ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.Encode(Prompt, addSpecial: true, PromptContentRanges(0));
    }

    /// <summary>
    /// The ids of <see cref="Prompt"/> from character <paramref name="offset"/> on, where the ids of the text before it
    /// are already known (a conversation's earlier turns): tokenized as <see cref="Tokenize"/> tokenizes it, but as a
    /// continuation (no BOS, no dummy-prefix space at the offset), so the known ids followed by these spell the prompt.
    /// </summary>
    public int[] TokenizeFrom(ITokenizer tokenizer, int offset)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, PromptEnd - PromptStart);
        return tokenizer.EncodeContinuation(Prompt[offset..], PromptContentRanges(offset));
    }

    /// <summary><see cref="ContentRanges"/> within the prompt from <paramref name="offset"/> on, relative to that offset.</summary>
    private List<TextRange> PromptContentRanges(int offset)
    {
        int start = PromptStart + offset, end = PromptEnd;
        var ranges = new List<TextRange>(ContentRanges.Count);
        foreach (var r in ContentRanges)
        {
            int from = Math.Max(r.Start, start), to = Math.Min(r.End, end);
            if (from < to) ranges.Add(new TextRange(from - start, to - from));
        }
        return ranges;
    }

    /// <summary>
    /// This rendering with the start of the assistant's reply after it, written for the model to go on from (a forced
    /// tool call's opening): template text, so its special-token text is parsed as special tokens.
    /// </summary>
    public RenderedChat WithReplyStart(string replyStart)
    {
        ArgumentNullException.ThrowIfNull(replyStart);
        return replyStart.Length == 0 ? this : new RenderedChat(Text + replyStart, ContentRanges, BosToken, EosToken);
    }

    public override string ToString() => Text;
}
