namespace KvSharp.Templates;

/// <summary>
/// Splits a reply into its reasoning and its answer as the text streams in: each piece gives what of it is reasoning
/// and what is answer as far as can be told yet (a marker split across pieces is held back until it is whole).
/// </summary>
public interface IReplySplitter
{
    /// <summary>The next piece of the reply: what of it is reasoning and what is answer.</summary>
    (string Reasoning, string Answer) Append(string text);

    /// <summary>What is still held back when the reply ends.</summary>
    (string Reasoning, string Answer) Flush();
}
