namespace KvSharp.Templates;

/// <summary>
/// Python methods templates call on values: str.strip/split/startswith/replace/title/... and dict.items/keys/
/// values/get. Strings keep their data marks through every method.
/// </summary>
internal static class JinjaMethods
{
    public static JinjaCallable? ForString(MarkedString s, string name) => name switch
    {
        "strip" => Method(name, a => Strip(s, a.Get(0, "chars"), start: true, end: true)),
        "lstrip" => Method(name, a => Strip(s, a.Get(0, "chars"), start: true, end: false)),
        "rstrip" => Method(name, a => Strip(s, a.Get(0, "chars"), start: false, end: true)),
        "upper" => Method(name, _ => s.MapChars(t => t.ToUpperInvariant())),
        "lower" => Method(name, _ => s.MapChars(t => t.ToLowerInvariant())),
        "title" => Method(name, _ => s.MapChars(PythonTitle)),
        "capitalize" => Method(name, _ => s.MapChars(Capitalize)),
        "startswith" => Method(name, a => Prefixes(a.Required(0, "prefix"), name).Any(p => s.Text.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => Method(name, a => Prefixes(a.Required(0, "suffix"), name).Any(p => s.Text.EndsWith(p, StringComparison.Ordinal))),
        "split" => Method(name, a => Split(s, a.Get(0, "sep"), a.Get(1, "maxsplit", -1L))),
        "replace" => Method(name, a => Replace(s, Str(a.Required(0, "old"), name), Str(a.Required(1, "new"), name), a.Get(2, "count", -1L) is long n ? n : -1)),
        "find" => Method(name, a => (long)s.Text.IndexOf(Str(a.Required(0, "sub"), name).Text, StringComparison.Ordinal)),
        "count" => Method(name, a => (long)CountOccurrences(s.Text, Str(a.Required(0, "sub"), name).Text)),
        "join" => Method(name, a => Join(JinjaIteration.Items(a.Required(0, "iterable")), s)),
        "isdigit" => Method(name, _ => s.Length > 0 && s.Text.All(char.IsDigit)),
        "isspace" => Method(name, _ => s.Length > 0 && s.Text.All(char.IsWhiteSpace)),
        "isalpha" => Method(name, _ => s.Length > 0 && s.Text.All(char.IsLetter)),
        _ => null,
    };

    public static JinjaCallable? ForMapping(JinjaDict dict, string name) => name switch
    {
        "items" => Method(name, _ => Items(dict)),
        "keys" => Method(name, _ => dict.Keys.Select(k => (object?)dict.KeyValue(k)).ToList()),
        "values" => Method(name, _ => dict.Values.ToList()),
        "get" => Method(name, a =>
        {
            string key = JinjaValues.ToText(a.Required(0, "key")).Text;
            return dict.TryGetValue(key, out var v) ? v : a.Get(1, "default");
        }),
        _ => null,
    };

    public static JinjaCallable? ForList(List<object?> list, string name) => name switch
    {
        "index" => Method(name, a =>
        {
            var item = a.Required(0, "value");
            int i = list.FindIndex(x => JinjaValues.AreEqual(x, item));
            return i >= 0 ? (long)i : throw new JinjaError($"{JinjaValues.Repr(item)} is not in the list");
        }),
        "count" => Method(name, a => (long)list.Count(x => JinjaValues.AreEqual(x, a.Required(0, "value")))),
        _ => null,
    };

    private static JinjaCallable Method(string name, Func<JinjaArguments, object?> body) => new(name, body);

    public static List<object?> Items(JinjaDict dict) =>
        dict.Select(kv => (object?)new JinjaTuple { dict.KeyValue(kv.Key), kv.Value }).ToList();

    public static MarkedString Str(object? v, string callee) =>
        v as MarkedString ?? throw new JinjaError($"{callee}() needs a string, got {JinjaValues.TypeName(v)}");

    private static IEnumerable<string> Prefixes(object? v, string callee) => v switch
    {
        MarkedString s => [s.Text],
        List<object?> list => list.Select(x => Str(x, callee).Text),
        _ => throw new JinjaError($"{callee}() needs a string or a tuple of strings, got {JinjaValues.TypeName(v)}"),
    };

    /// <summary>str.strip: whitespace (or the given characters) off one or both ends.</summary>
    public static MarkedString Strip(MarkedString s, object? chars, bool start, bool end)
    {
        string? set = chars switch
        {
            null or JinjaUndefined => null,
            MarkedString c => c.Text,
            _ => throw new JinjaError($"strip() needs a string of characters, got {JinjaValues.TypeName(chars)}"),
        };
        bool Strippable(char c) => set == null ? char.IsWhiteSpace(c) : set.Contains(c);
        int from = 0, to = s.Length;
        if (start) while (from < to && Strippable(s.Text[from])) from++;
        if (end) while (to > from && Strippable(s.Text[to - 1])) to--;
        return s.Substring(from, to - from);
    }

    /// <summary>str.split: on runs of whitespace (dropping empty ends) without a separator, else on each separator.</summary>
    private static List<object?> Split(MarkedString s, object? separator, object? maxSplit)
    {
        long max = maxSplit is long m ? m : -1;
        var result = new List<object?>();
        string text = s.Text;
        if (separator is null or JinjaUndefined)
        {
            int i = 0;
            while (true)
            {
                while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
                if (i >= text.Length) break;
                if (max >= 0 && result.Count == max)
                {
                    int end = text.Length;
                    while (end > i && char.IsWhiteSpace(text[end - 1])) end--;
                    result.Add(s.Substring(i, end - i));
                    break;
                }
                int startWord = i;
                while (i < text.Length && !char.IsWhiteSpace(text[i])) i++;
                result.Add(s.Substring(startWord, i - startWord));
            }
            return result;
        }
        string sep = Str(separator, "split").Text;
        if (sep.Length == 0) throw new JinjaError("split() separator cannot be empty");
        int from = 0;
        while (max < 0 || result.Count < max)
        {
            int hit = text.IndexOf(sep, from, StringComparison.Ordinal);
            if (hit < 0) break;
            result.Add(s.Substring(from, hit - from));
            from = hit + sep.Length;
        }
        result.Add(s.Substring(from, text.Length - from));
        return result;
    }

    public static MarkedString Replace(MarkedString s, MarkedString old, MarkedString replacement, long count)
    {
        var b = new MarkedStringBuilder();
        string text = s.Text;
        int from = 0;
        long done = 0;
        if (old.Length == 0)
        {
            // Python inserts the replacement between characters and at both ends.
            for (int i = 0; i <= text.Length; i++)
            {
                if (count < 0 || done < count) { b.Append(replacement); done++; }
                if (i < text.Length) b.Append(s, i, 1);
            }
            return b.ToMarked();
        }
        while (count < 0 || done < count)
        {
            int hit = text.IndexOf(old.Text, from, StringComparison.Ordinal);
            if (hit < 0) break;
            b.Append(s, from, hit - from);
            b.Append(replacement);
            from = hit + old.Length;
            done++;
        }
        b.Append(s, from, text.Length - from);
        return b.ToMarked();
    }

    public static MarkedString Join(IEnumerable<object?> items, MarkedString separator)
    {
        var b = new MarkedStringBuilder();
        bool first = true;
        foreach (var item in items)
        {
            if (!first) b.Append(separator);
            first = false;
            b.Append(JinjaValues.ToText(item));
        }
        return b.ToMarked();
    }

    private static int CountOccurrences(string text, string sub)
    {
        if (sub.Length == 0) return text.Length + 1;
        int n = 0;
        for (int i = text.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = text.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>Python's str.title: a letter after a non-letter is upper case, other letters lower case.</summary>
    public static string PythonTitle(string text)
    {
        var chars = text.ToCharArray();
        bool previousIsLetter = false;
        for (int i = 0; i < chars.Length; i++)
        {
            char c = chars[i];
            chars[i] = previousIsLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c);
            previousIsLetter = char.IsLetter(c);
        }
        return new string(chars);
    }

    public static string Capitalize(string text) =>
        text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..].ToLowerInvariant();
}
