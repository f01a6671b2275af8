namespace KvSharp.Templates;

internal enum JinjaTokenKind
{
    /// <summary>Template text outside any tag, whitespace control already applied.</summary>
    Text,
    VariableBegin, VariableEnd, BlockBegin, BlockEnd,
    Name, String, Integer, Float,
    /// <summary>Punctuation and operators: + - * / // % ** ~ == != &lt; &gt; &lt;= &gt;= = ( ) [ ] { } , . : |</summary>
    Operator,
    End,
}

/// <summary>One lexed token with the line and column (1-based) where it starts.</summary>
internal readonly record struct JinjaToken(JinjaTokenKind Kind, string Value, int Line, int Column)
{
    public bool Is(JinjaTokenKind kind, string value) => Kind == kind && Value == value;
    public bool IsName(string name) => Kind == JinjaTokenKind.Name && Value == name;
    public bool IsOperator(string op) => Kind == JinjaTokenKind.Operator && Value == op;

    public override string ToString() => Kind switch
    {
        JinjaTokenKind.End => "the end of the template",
        JinjaTokenKind.Text => "template text",
        JinjaTokenKind.String => $"string '{Value}'",
        JinjaTokenKind.VariableEnd => "'}}'",
        JinjaTokenKind.BlockEnd => "'%}'",
        _ => $"'{Value}'",
    };
}
