namespace KvSharp.Templates;

/// <summary>A parsed Jinja template, rendered any number of times with different variables.</summary>
internal sealed class JinjaTemplate
{
    private readonly IReadOnlyList<JinjaNode> _body;

    private JinjaTemplate(string name, IReadOnlyList<JinjaNode> body)
    {
        Name = name;
        _body = body;
    }

    public string Name { get; }

    /// <exception cref="TemplateException">The template has a syntax error (the message has its line and column).</exception>
    public static JinjaTemplate Parse(string source, string name) => new(name, JinjaParser.Parse(name, source));

    /// <summary>Renders with <paramref name="variables"/> (template values: MarkedString, long, double, bool, lists, JinjaDict) and the globals.</summary>
    public MarkedString Render(IReadOnlyDictionary<string, object?> variables, DateTimeOffset now)
    {
        var globals = new JinjaScope(null);
        JinjaGlobals.AddTo(globals, now);
        var scope = new JinjaScope(globals);
        foreach (var (name, value) in variables) scope.Set(name, value);
        return new JinjaEvaluator(Name).Render(_body, scope);
    }
}
