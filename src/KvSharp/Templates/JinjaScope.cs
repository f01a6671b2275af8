namespace KvSharp.Templates;

/// <summary>
/// Variables visible at one point of a template: a for-loop iteration and a macro call open a child scope (what
/// they set does not leak out, as in Jinja2, which is why templates carry state out of loops with namespace()),
/// if-blocks do not.
/// </summary>
internal sealed class JinjaScope(JinjaScope? parent)
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    public JinjaScope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s != null; s = s.Parent)
            if (s._variables.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _variables[name] = value;
}
