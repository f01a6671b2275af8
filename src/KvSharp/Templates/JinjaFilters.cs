using System.Globalization;

namespace KvSharp.Templates;

/// <summary>The filters of "value | name(args)": Jinja2's built-ins that chat templates use, plus Hugging Face's tojson.</summary>
internal static class JinjaFilters
{
    public static object? Apply(string name, object? value, JinjaArguments a)
    {
        switch (name)
        {
            case "trim": return JinjaMethods.Strip(Text(value, name), a.Get(0, "chars"), start: true, end: true);
            case "length" or "count":
                return value switch
                {
                    MarkedString s => (long)s.Length,
                    List<object?> l => (long)l.Count,
                    JinjaDict d => (long)d.Count,
                    JinjaUndefined => 0L,
                    _ => throw new JinjaError($"{name} needs a string, list or mapping, got {JinjaValues.TypeName(value)}"),
                };
            case "items":
                return value switch
                {
                    JinjaDict d => JinjaMethods.Items(d),
                    JinjaUndefined => new List<object?>(),
                    _ => throw new JinjaError($"items needs a mapping, got {JinjaValues.TypeName(value)}"),
                };
            case "upper": return Text(value, name).MapChars(t => t.ToUpperInvariant());
            case "lower": return Text(value, name).MapChars(t => t.ToLowerInvariant());
            case "capitalize": return Text(value, name).MapChars(JinjaMethods.Capitalize);
            case "title": return Text(value, name).MapChars(JinjaTitle);
            case "string": return JinjaValues.ToText(value);
            case "safe": return value is MarkedString m ? m.AsSafe() : value;
            case "tojson":
            {
                var indent = a.Get(0, "indent");
                return JinjaJson.Serialize(value, indent is long n ? (int)n : null, JinjaValues.IsTrue(a.Get(-1, "sort_keys", false)));
            }
            case "join":
            {
                var items = JinjaIteration.Items(value);
                var attribute = a.Get(1, "attribute");
                if (attribute is not null) items = items.Select(x => JinjaAccess.Index(x, attribute)).ToList();
                return JinjaMethods.Join(items, a.Get(0, "d") is MarkedString sep ? sep : MarkedString.Empty);
            }
            case "default" or "d":
            {
                bool boolean = JinjaValues.IsTrue(a.Get(1, "boolean", false));
                bool useDefault = value is JinjaUndefined || (boolean && !JinjaValues.IsTrue(value));
                return useDefault ? a.Get(0, "default_value", MarkedString.Empty) : value;
            }
            case "first": return value is MarkedString fs ? JinjaAccess.Index(fs, 0L) : JinjaIteration.Items(value) is { Count: > 0 } f ? f[0] : new JinjaUndefined("first of an empty sequence");
            case "last": return value is MarkedString ls ? JinjaAccess.Index(ls, -1L) : JinjaIteration.Items(value) is { Count: > 0 } l2 ? l2[^1] : new JinjaUndefined("last of an empty sequence");
            case "replace":
                return JinjaMethods.Replace(JinjaValues.ToText(value), JinjaMethods.Str(a.Required(0, "old"), name),
                    JinjaValues.ToText(a.Required(1, "new")), a.Get(2, "count") is long c ? c : -1);
            case "int": return ToInt(value, a.Get(0, "default", 0L));
            case "float": return ToFloat(value, a.Get(0, "default", 0.0));
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double d => Math.Abs(d),
                    _ => throw new JinjaError($"abs needs a number, got {JinjaValues.TypeName(value)}"),
                };
            case "round":
            {
                double d = JinjaValues.ToDouble(value);
                int digits = a.Get(0, "precision", 0L) is long p ? (int)p : 0;
                string method = a.Get(1, "method") is MarkedString ms ? ms.Text : "common";
                return method switch
                {
                    "floor" => Math.Floor(d * Math.Pow(10, digits)) / Math.Pow(10, digits),
                    "ceil" => Math.Ceiling(d * Math.Pow(10, digits)) / Math.Pow(10, digits),
                    _ => Math.Round(d, digits, MidpointRounding.AwayFromZero),
                };
            }
            case "list": return new List<object?>(JinjaIteration.Items(value));
            case "reverse":
                return value is MarkedString rs ? JinjaAccess.Slice(rs, null, null, -1L) : Enumerable.Reverse(JinjaIteration.Items(value)).ToList();
            case "unique":
            {
                var result = new List<object?>();
                foreach (var item in JinjaIteration.Items(value))
                    if (!result.Any(x => JinjaValues.AreEqual(x, item))) result.Add(item);
                return result;
            }
            case "sort":
            {
                var items = new List<object?>(JinjaIteration.Items(value));
                var attribute = a.Get(2, "attribute");
                object? Key(object? x) => attribute is null ? x : JinjaAccess.Index(x, attribute);
                items.Sort((x, y) => JinjaValues.Compare(Key(x), Key(y)));
                if (JinjaValues.IsTrue(a.Get(0, "reverse", false))) items.Reverse();
                return items;
            }
            case "sum":
            {
                var attribute = a.Get(0, "attribute");
                object? total = a.Get(1, "start", 0L);
                foreach (var item in JinjaIteration.Items(value))
                    total = JinjaArithmetic.Apply("+", total, attribute is null ? item : JinjaAccess.Index(item, attribute));
                return total;
            }
            case "min" or "max":
            {
                var items = JinjaIteration.Items(value);
                if (items.Count == 0) return new JinjaUndefined($"{name} of an empty sequence");
                var best = items[0];
                foreach (var item in items.Skip(1))
                    if (JinjaValues.Compare(item, best) is var c2 && (name == "min" ? c2 < 0 : c2 > 0)) best = item;
                return best;
            }
            case "indent": return Indent(Text(value, name), a);
            case "format": return Format(Text(value, name), a.Positional);
            case "map": return Map(value, a);
            case "select" or "reject": return Select(value, a, byAttribute: false, keep: name == "select");
            case "selectattr" or "rejectattr": return Select(value, a, byAttribute: true, keep: name == "selectattr");
            case "dictsort":
            {
                if (value is not JinjaDict dict) throw new JinjaError($"dictsort needs a mapping, got {JinjaValues.TypeName(value)}");
                var items = JinjaMethods.Items(dict);
                // Python sorts the keys: integers by value, strings by code point.
                static object? KeyOf(object? item) => ((List<object?>)item!)[0];
                items.Sort((x, y) => KeyOf(x) is long a && KeyOf(y) is long b ? a.CompareTo(b)
                    : string.CompareOrdinal(JinjaValues.ToText(KeyOf(x)).Text, JinjaValues.ToText(KeyOf(y)).Text));
                return items;
            }
            default:
                throw new JinjaError($"unknown filter '{name}'");
        }
    }

    /// <summary>
    /// Python's printf-style <c>format % args</c> (what Jinja's format filter does): %s, %r, %d, %i, %f, %x and %%,
    /// with optional flags, width and precision; the text stays data where the arguments are.
    /// </summary>
    private static MarkedString Format(MarkedString format, IReadOnlyList<object?> args)
    {
        var result = new MarkedStringBuilder();
        string f = format.Text;
        int next = 0, plainFrom = 0;
        for (int i = 0; i < f.Length; i++)
        {
            if (f[i] != '%') continue;
            result.Append(format, plainFrom, i - plainFrom);
            int start = i++;
            while (i < f.Length && "-+ #0123456789.".Contains(f[i])) i++;
            if (i >= f.Length) throw new JinjaError($"format '{f}' ends inside a conversion");
            char conversion = f[i];
            plainFrom = i + 1;
            if (conversion == '%')
            {
                result.Append(MarkedString.Plain("%"));
                continue;
            }
            if (next >= args.Count) throw new JinjaError($"format '{f}' needs more arguments than the {args.Count} given");
            object? arg = args[next++];
            string spec = f[(start + 1)..i];
            int dot = spec.IndexOf('.');
            int? precision = dot >= 0 && int.TryParse(spec[(dot + 1)..], out int p) ? p : null;
            string text = conversion switch
            {
                's' => JinjaValues.ToText(arg).Text,
                'r' => JinjaValues.Repr(arg).Text,
                // Python's int(): toward zero.
                'd' or 'i' => (arg is long whole ? whole : (long)JinjaValues.ToDouble(arg)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                'f' => JinjaValues.ToDouble(arg).ToString("F" + (precision ?? 6), System.Globalization.CultureInfo.InvariantCulture),
                'x' => (arg is long hex ? hex : (long)JinjaValues.ToDouble(arg)).ToString("x", System.Globalization.CultureInfo.InvariantCulture),
                _ => throw new JinjaError($"format conversion '%{conversion}' is not supported"),
            };
            if (conversion == 's' && precision is int cut && cut < text.Length) text = text[..cut];
            string digits = new(spec.TakeWhile(c => c != '.').SkipWhile(c => "-+ #0".Contains(c)).ToArray());
            if (int.TryParse(digits, out int width) && text.Length < width) text = spec.StartsWith('-') ? text.PadRight(width) : text.PadLeft(width);
            result.Append(arg is MarkedString { HasData: true } ? MarkedString.Data(text) : MarkedString.Plain(text));
        }
        result.Append(format, plainFrom, f.Length - plainFrom);
        return result.ToMarked();
    }

    private static MarkedString Text(object? value, string filter) => value switch
    {
        MarkedString s => s,
        JinjaUndefined => MarkedString.Empty,
        _ => JinjaValues.ToText(value),
    };

    /// <summary>Jinja2's title filter: upper-case the first letter of each word (words start after whitespace, -, (, {, [ or &lt;).</summary>
    private static string JinjaTitle(string text)
    {
        var chars = text.ToCharArray();
        bool wordStart = true;
        for (int i = 0; i < chars.Length; i++)
        {
            char c = chars[i];
            bool separator = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            chars[i] = separator ? c : wordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c);
            wordStart = separator;
        }
        return new string(chars);
    }

    private static object? ToInt(object? value, object? fallback)
    {
        switch (value)
        {
            case long l: return l;
            case bool b: return b ? 1L : 0L;
            case double d: return (long)Math.Truncate(d);
            case MarkedString s:
                if (long.TryParse(s.Text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long parsed)) return parsed;
                if (double.TryParse(s.Text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double f)) return (long)Math.Truncate(f);
                return fallback;
            default: return fallback;
        }
    }

    private static object? ToFloat(object? value, object? fallback) => value switch
    {
        long l => (double)l,
        double d => d,
        bool b => b ? 1.0 : 0.0,
        MarkedString s when double.TryParse(s.Text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double f) => f,
        _ => fallback,
    };

    /// <summary>indent(width=4, first=False, blank=False): indents every line but the first (and blank ones) by width spaces.</summary>
    private static MarkedString Indent(MarkedString s, JinjaArguments a)
    {
        var widthArg = a.Get(0, "width", 4L);
        string pad = widthArg is MarkedString ws ? ws.Text : new string(' ', (int)(widthArg is long w ? w : 4));
        bool first = JinjaValues.IsTrue(a.Get(1, "first", false));
        bool blank = JinjaValues.IsTrue(a.Get(2, "blank", false));
        var b = new MarkedStringBuilder();
        int lineStart = 0;
        for (int line = 0; lineStart <= s.Length; line++)
        {
            int newline = s.Text.IndexOf('\n', lineStart);
            int end = newline < 0 ? s.Length : newline;
            bool isBlank = s.Text.AsSpan(lineStart, end - lineStart).IsWhiteSpace();
            if ((line > 0 || first) && (blank || !isBlank)) b.Append(pad);
            b.Append(s, lineStart, end - lineStart);
            if (newline < 0) break;
            b.Append(s, newline, 1);
            lineStart = newline + 1;
        }
        return b.ToMarked();
    }

    /// <summary>Jinja2's map and select filters iterate only a true value: none (a template's "tools = none") gives nothing.</summary>
    private static List<object?> ItemsOrNone(object? value) => JinjaValues.IsTrue(value) ? JinjaIteration.Items(value) : [];

    /// <summary>map(attribute='name', default=...) or map('filter', args...).</summary>
    private static List<object?> Map(object? value, JinjaArguments a)
    {
        var items = ItemsOrNone(value);
        if (a.Named.TryGetValue("attribute", out var attribute))
        {
            a.Named.TryGetValue("default", out var fallback);
            return items.Select(x => JinjaAccess.Index(x, attribute) is JinjaUndefined && fallback is not null ? fallback : JinjaAccess.Index(x, attribute)).ToList();
        }
        if (a.Positional.Count == 0 || a.Positional[0] is not MarkedString filter) throw new JinjaError("map needs a filter name or attribute=...");
        var rest = new JinjaArguments(filter.Text, a.Positional.Skip(1).ToList(), JinjaArguments.NoNames);
        return items.Select(x => Apply(filter.Text, x, rest)).ToList();
    }

    /// <summary>select/reject(test, args...) and selectattr/rejectattr(attribute, test, args...): without a test, truthiness.</summary>
    private static List<object?> Select(object? value, JinjaArguments a, bool byAttribute, bool keep)
    {
        int next = 0;
        object? attribute = null;
        if (byAttribute)
        {
            if (a.Positional.Count == 0) throw new JinjaError($"{a.Callee} needs an attribute name");
            attribute = a.Positional[next++];
        }
        string? test = next < a.Positional.Count ? JinjaMethods.Str(a.Positional[next++], a.Callee).Text : null;
        var testArgs = a.Positional.Skip(next).ToList();
        var result = new List<object?>();
        foreach (var item in ItemsOrNone(value))
        {
            var subject = byAttribute ? JinjaAccess.Index(item, attribute) : item;
            bool passes = test == null ? JinjaValues.IsTrue(subject) : JinjaTests.Run(test, subject, testArgs);
            if (passes == keep) result.Add(item);
        }
        return result;
    }
}
