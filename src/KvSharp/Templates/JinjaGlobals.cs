using System.Globalization;
using System.Text;

namespace KvSharp.Templates;

/// <summary>
/// The functions every chat template can call: Jinja2's range, namespace and dict, and what Hugging Face adds for
/// chat templates: raise_exception(message) and strftime_now(format).
/// </summary>
internal static class JinjaGlobals
{
    public static void AddTo(JinjaScope scope, DateTimeOffset now)
    {
        scope.Set("range", new JinjaCallable("range", Range));
        scope.Set("namespace", new JinjaCallable("namespace", a =>
        {
            var ns = new JinjaNamespace();
            if (a.Positional.Count > 0 && a.Positional[0] is JinjaDict initial)
                foreach (var (k, v) in initial) ns[k] = v;
            foreach (var (k, v) in a.Named) ns[k] = v;
            return ns;
        }));
        scope.Set("dict", new JinjaCallable("dict", a =>
        {
            var d = new JinjaDict();
            foreach (var (k, v) in a.Named) d[k] = v;
            return d;
        }));
        scope.Set("raise_exception", new JinjaCallable("raise_exception", a =>
            throw new JinjaError(JinjaValues.ToText(a.Get(0, "message", MarkedString.Plain("raise_exception() was called"))).Text) { RaisedByTemplate = true }));
        scope.Set("strftime_now", new JinjaCallable("strftime_now", a => MarkedString.Plain(Strftime(now, JinjaMethods.Str(a.Required(0, "format"), "strftime_now").Text))));
    }

    private static List<object?> Range(JinjaArguments a)
    {
        a.AtMost(3);
        long Int(object? v) => v is long l ? l : throw new JinjaError($"range() needs integers, got {JinjaValues.TypeName(v)}");
        long start = 0, stop, step = 1;
        if (a.Positional.Count == 1) stop = Int(a.Positional[0]);
        else if (a.Positional.Count >= 2)
        {
            start = Int(a.Positional[0]);
            stop = Int(a.Positional[1]);
            if (a.Positional.Count == 3) step = Int(a.Positional[2]);
        }
        else throw new JinjaError("range() needs at least one argument");
        if (step == 0) throw new JinjaError("range() step cannot be zero");
        var result = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            if (result.Count >= 1_000_000) throw new JinjaError("range() of more than 1,000,000 items");
            result.Add(i);
        }
        return result;
    }

    /// <summary>Python's strftime for the directives templates use (%d %m %Y %y %b %B %a %A %H %I %M %S %p %j %%).</summary>
    public static string Strftime(DateTimeOffset t, string format)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { sb.Append(format[i]); continue; }
            char d = format[++i];
            sb.Append(d switch
            {
                'd' => t.ToString("dd", c),
                'm' => t.ToString("MM", c),
                'Y' => t.ToString("yyyy", c),
                'y' => t.ToString("yy", c),
                'b' => t.ToString("MMM", c),
                'B' => t.ToString("MMMM", c),
                'a' => t.ToString("ddd", c),
                'A' => t.ToString("dddd", c),
                'H' => t.ToString("HH", c),
                'I' => t.ToString("hh", c),
                'M' => t.ToString("mm", c),
                'S' => t.ToString("ss", c),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => t.DayOfYear.ToString("000", c),
                '%' => "%",
                _ => "%" + d,
            });
        }
        return sb.ToString();
    }
}
