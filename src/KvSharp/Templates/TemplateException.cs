namespace KvSharp.Templates;

/// <summary>
/// A chat template that cannot be parsed or rendered: a syntax error, an undefined name called, a type error, or the
/// template's own raise_exception('...'). The message names the template and the line and column.
/// </summary>
public sealed class TemplateException : FormatException
{
    public TemplateException(string templateName, int line, int column, string message)
        : base($"chat template {templateName}, line {line}, column {column}: {message}")
    {
        TemplateName = templateName;
        Line = line;
        Column = column;
        Reason = message;
    }

    public string TemplateName { get; }
    public int Line { get; }
    public int Column { get; }
    /// <summary>What went wrong, without the location (for raise_exception: the template's own message).</summary>
    public string Reason { get; }
    /// <summary>True when the template itself called raise_exception (e.g. "Conversation roles must alternate").</summary>
    public bool RaisedByTemplate { get; init; }
}
