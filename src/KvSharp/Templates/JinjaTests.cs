namespace KvSharp.Templates;

/// <summary>The tests of "x is name(args)": Jinja2's built-in tests that chat templates use.</summary>
internal static class JinjaTests
{
    public static bool Run(string name, object? value, IReadOnlyList<object?> args)
    {
        object? Arg()
        {
            if (args.Count == 0) throw new JinjaError($"the test '{name}' needs an argument");
            return args[0];
        }

        return name switch
        {
            "defined" => value is not JinjaUndefined,
            "undefined" => value is JinjaUndefined,
            "none" => value is null,
            "string" => value is MarkedString,
            "number" => value is long or double or bool,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is JinjaDict,
            "iterable" => value is List<object?> or JinjaDict or MarkedString or JinjaUndefined,
            "sequence" => value is List<object?> or JinjaDict or MarkedString,
            "callable" => value is JinjaCallable,
            "odd" => Integer(value, name) % 2 != 0,
            "even" => Integer(value, name) % 2 == 0,
            "divisibleby" => Integer(value, name) % Integer(Arg(), name) == 0,
            "eq" or "equalto" or "==" => JinjaValues.AreEqual(value, Arg()),
            "ne" or "!=" => !JinjaValues.AreEqual(value, Arg()),
            "lt" or "lessthan" or "<" => JinjaValues.Compare(value, Arg()) < 0,
            "le" or "<=" => JinjaValues.Compare(value, Arg()) <= 0,
            "gt" or "greaterthan" or ">" => JinjaValues.Compare(value, Arg()) > 0,
            "ge" or ">=" => JinjaValues.Compare(value, Arg()) >= 0,
            "in" => JinjaAccess.Contains(Arg(), value),
            "sameas" => SameAs(value, Arg()),
            "lower" => value is MarkedString s && s.Text == s.Text.ToLowerInvariant(),
            "upper" => value is MarkedString u && u.Text == u.Text.ToUpperInvariant(),
            _ => throw new JinjaError($"unknown test '{name}'"),
        };
    }

    /// <summary>Python's "is": none, true and false are singletons; other values are the same object.</summary>
    private static bool SameAs(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        _ => ReferenceEquals(a, b),
    };

    private static long Integer(object? v, string test) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new JinjaError($"the test '{test}' needs an integer, got {JinjaValues.TypeName(v)}"),
    };
}
