using KvSharp.Templates;

namespace KvSharp.Cli.Chat;

/// <summary>
/// A reply as `kvsharp chat` shows it while it streams: the answer on stdout, and where the template's model reasons
/// first (think tags, gpt-oss's Harmony analysis) the reasoning on stderr, after "[reasoning] ", so that stdout holds
/// the answers only and no marker is printed.
/// </summary>
internal sealed class ShownReply(IReplySplitter? splitter, TextWriter output, TextWriter log)
{
    private bool _reasoning;

    public void Append(string piece)
    {
        if (splitter == null) Write(("", piece));
        else Write(splitter.Append(piece));
    }

    /// <summary>What the splitter still held, then the reply's line ends.</summary>
    public void End()
    {
        if (splitter != null) Write(splitter.Flush());
        if (_reasoning) log.WriteLine();
        output.WriteLine();
        output.Flush();
    }

    private void Write((string Reasoning, string Answer) part)
    {
        if (part.Reasoning.Length > 0)
        {
            if (!_reasoning) log.Write("[reasoning] ");
            _reasoning = true;
            log.Write(part.Reasoning);
            log.Flush();
        }
        if (part.Answer.Length > 0)
        {
            output.Write(part.Answer);
            output.Flush();
        }
    }
}
