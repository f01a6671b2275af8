using System.Globalization;

namespace KvSharp.Templates;

/// <summary>
/// An undefined name or missing attribute, as Jinja2's default Undefined: it prints as "", is false, has length 0
/// and iterates as empty, but using it any other way (an attribute, an index, a call, arithmetic) is an error.
/// </summary>
internal sealed class JinjaUndefined(string description)
{
    /// <summary>What was missing, for error messages ("'tools' is undefined").</summary>
    public string Description { get; } = description;
}

/// <summary>A mapping with Python's insertion order (Jinja2 dicts, messages, namespace(), loop).</summary>
internal class JinjaDict : OrderedDictionary<string, object?>
{
    // Keys written as integers ({0: 'a', 512: 'b'}): stored by their text, given back as integers.
    private HashSet<string>? _integerKeys;

    public JinjaDict() : base(StringComparer.Ordinal) { }

    /// <summary>Sets a value under a key of any type: an integer key is kept as its text and read back as an integer.</summary>
    public void SetKey(object? key, object? value)
    {
        string text = JinjaValues.ToText(key).Text;
        this[text] = value;
        if (key is long) (_integerKeys ??= new HashSet<string>(StringComparer.Ordinal)).Add(text);
    }

    /// <summary>A key as the template sees it: an integer where it was written as one, else a string.</summary>
    public object KeyValue(string key) =>
        _integerKeys != null && _integerKeys.Contains(key) ? long.Parse(key, System.Globalization.CultureInfo.InvariantCulture) : MarkedString.Plain(key);
}

/// <summary>A Python tuple: a list that prints as (a, b). dict.items() and (a, b) literals make them.</summary>
internal sealed class JinjaTuple : List<object?>
{
    public JinjaTuple() { }
    public JinjaTuple(IEnumerable<object?> items) : base(items) { }
}

/// <summary>namespace(...): the one mapping a template may assign into ({% set ns.x = 1 %}), across loop scopes.</summary>
internal sealed class JinjaNamespace : JinjaDict;

/// <summary>A function a template can call: a global (range, namespace, raise_exception), a method, a macro.</summary>
internal sealed class JinjaCallable(string name, Func<JinjaArguments, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(JinjaArguments args) => invoke(args);
}

/// <summary>Evaluated call arguments, with helpers that fail with the callee's name when one is missing or wrong.</summary>
internal sealed class JinjaArguments(string callee, IReadOnlyList<object?> positional, IReadOnlyDictionary<string, object?> named)
{
    public static readonly IReadOnlyDictionary<string, object?> NoNames = new Dictionary<string, object?>();

    public string Callee { get; } = callee;
    public IReadOnlyList<object?> Positional { get; } = positional;
    public IReadOnlyDictionary<string, object?> Named { get; } = named;

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public object? Get(int index, string name, object? fallback = null) =>
        index >= 0 && index < Positional.Count ? Positional[index] : Named.TryGetValue(name, out var v) ? v : fallback;

    public bool Has(int index, string name) => (index >= 0 && index < Positional.Count) || Named.ContainsKey(name);

    public object? Required(int index, string name) =>
        Has(index, name) ? Get(index, name) : throw new JinjaError($"{Callee}() is missing its argument '{name}'");

    public void AtMost(int count)
    {
        if (Positional.Count > count) throw new JinjaError($"{Callee}() takes at most {count} positional argument{(count == 1 ? "" : "s")}, got {Positional.Count}");
    }
}

/// <summary>An error during rendering, located by the evaluator at the node being evaluated.</summary>
internal sealed class JinjaError(string message) : Exception(message)
{
    public bool RaisedByTemplate { get; init; }
}

/// <summary>Python's semantics for Jinja2 values: truth, equality, ordering, printing (str and repr), type names.</summary>
internal static class JinjaValues
{
    public static bool IsTrue(object? v) => v switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        MarkedString s => s.Length > 0,
        List<object?> list => list.Count > 0,
        JinjaDict dict => dict.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new JinjaError($"expected a number, got {TypeName(v)}"),
    };

    public static bool AreEqual(object? a, object? b)
    {
        if (a is JinjaUndefined && b is JinjaUndefined) return true;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        return (a, b) switch
        {
            (null, null) => true,
            (MarkedString x, MarkedString y) => x.Text == y.Text,
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => AreEqual(p.First, p.Second)),
            (JinjaDict x, JinjaDict y) => x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out var o) && AreEqual(kv.Value, o)),
            _ => ReferenceEquals(a, b),
        };
    }

    private static long ToLong(object? v) => v switch { long l => l, bool b => b ? 1 : 0, _ => throw new JinjaError($"expected an integer, got {TypeName(v)}") };

    /// <summary>Python ordering: numbers with numbers, strings with strings (ordinal), lists element by element.</summary>
    public static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a).CompareTo(ToDouble(b));
        if (a is MarkedString x && b is MarkedString y) return Math.Sign(string.CompareOrdinal(x.Text, y.Text));
        if (a is List<object?> la && b is List<object?> lb)
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                int c = Compare(la[i], lb[i]);
                if (c != 0) return c;
            }
            return la.Count.CompareTo(lb.Count);
        }
        throw new JinjaError($"cannot compare {TypeName(a)} with {TypeName(b)}");
    }

    public static string TypeName(object? v) => v switch
    {
        null => "none",
        JinjaUndefined u => $"undefined ({u.Description})",
        bool => "a boolean",
        long => "an integer",
        double => "a float",
        MarkedString => "a string",
        List<object?> => "a list",
        JinjaDict => "a mapping",
        JinjaCallable c => $"the function {c.Name}",
        _ => v.GetType().Name,
    };

    /// <summary>The value as {{ }} prints it (Python's str): None, True, 1.5, ['a', 1], {'k': 'v'}; undefined prints nothing.</summary>
    public static MarkedString ToText(object? v) => v switch
    {
        MarkedString s => s,
        JinjaUndefined => MarkedString.Empty,
        _ => Repr(v, quoteStrings: false),
    };

    /// <summary>Python's repr (lists and dicts show their strings quoted); strings that are data stay marked as data.</summary>
    public static MarkedString Repr(object? v, bool quoteStrings = true)
    {
        var b = new MarkedStringBuilder();
        AppendRepr(b, v, quoteStrings);
        return b.ToMarked();
    }

    private static void AppendRepr(MarkedStringBuilder b, object? v, bool quoteStrings)
    {
        switch (v)
        {
            case null: b.Append("None"); break;
            case JinjaUndefined: break;
            case bool x: b.Append(x ? "True" : "False"); break;
            case long x: b.Append(x.ToString(CultureInfo.InvariantCulture)); break;
            case double x: b.Append(FormatFloat(x)); break;
            case MarkedString s when !quoteStrings: b.Append(s); break;
            case MarkedString s:
            {
                char quote = s.Text.Contains('\'') && !s.Text.Contains('"') ? '"' : '\'';
                b.Append(quote.ToString());
                for (int i = 0; i < s.Length; i++)
                {
                    char c = s.Text[i];
                    string escaped = c switch
                    {
                        '\\' => "\\\\", '\n' => "\\n", '\r' => "\\r", '\t' => "\\t",
                        _ when c == quote => "\\" + c,
                        _ => c.ToString(),
                    };
                    b.Append(escaped, s.IsDataAt(i));
                }
                b.Append(quote.ToString());
                break;
            }
            case List<object?> list:
            {
                bool tuple = list is JinjaTuple;
                b.Append(tuple ? "(" : "[");
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) b.Append(", ");
                    AppendRepr(b, list[i], true);
                }
                b.Append(tuple ? (list.Count == 1 ? ",)" : ")") : "]");
                break;
            }
            case JinjaDict dict:
            {
                b.Append("{");
                bool first = true;
                foreach (var (key, value) in dict)
                {
                    if (!first) b.Append(", ");
                    first = false;
                    AppendRepr(b, MarkedString.Plain(key), true);
                    b.Append(": ");
                    AppendRepr(b, value, true);
                }
                b.Append("}");
                break;
            }
            case JinjaCallable c: b.Append($"<function {c.Name}>"); break;
            default: b.Append(v.ToString() ?? ""); break;
        }
    }

    /// <summary>Python's repr of a float: the shortest round-trip digits, ".0" on whole numbers, e+XX past 1e16.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOf('E');
        if (e >= 0)
        {
            string mantissa = r[..e];
            int exponent = int.Parse(r.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            return $"{mantissa}e{(exponent < 0 ? '-' : '+')}{Math.Abs(exponent):00}";
        }
        return r.Contains('.') ? r : r + ".0";
    }
}
