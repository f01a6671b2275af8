using System.Globalization;

namespace KvSharp.Templates;

/// <summary>
/// The tojson filter as Hugging Face defines it for chat templates: Python's json.dumps with ensure_ascii=False
/// (non-ASCII stays as it is), ", " and ": " separators (", " becomes "," with an indent), optional indent and
/// sort_keys. Characters of data strings stay marked as data.
/// </summary>
internal static class JinjaJson
{
    public static MarkedString Serialize(object? value, int? indent, bool sortKeys)
    {
        var b = new MarkedStringBuilder();
        Write(b, value, indent, sortKeys, 0);
        return b.ToMarked();
    }

    private static void Write(MarkedStringBuilder b, object? value, int? indent, bool sortKeys, int level)
    {
        switch (value)
        {
            case null or JinjaUndefined: b.Append("null"); break;
            case bool x: b.Append(x ? "true" : "false"); break;
            case long x: b.Append(x.ToString(CultureInfo.InvariantCulture)); break;
            case double x:
                b.Append(double.IsNaN(x) ? "NaN" : double.IsInfinity(x) ? (x > 0 ? "Infinity" : "-Infinity") : JinjaValues.FormatFloat(x));
                break;
            case MarkedString s: WriteString(b, s); break;
            case List<object?> list:
                WriteContainer(b, '[', ']', list.Count, indent, level, i => Write(b, list[i], indent, sortKeys, level + 1));
                break;
            case JinjaDict dict:
            {
                var entries = dict.ToList();
                if (sortKeys) entries.Sort((x, y) => string.CompareOrdinal(x.Key, y.Key));
                WriteContainer(b, '{', '}', entries.Count, indent, level, i =>
                {
                    WriteString(b, MarkedString.Plain(entries[i].Key));
                    b.Append(": ");
                    Write(b, entries[i].Value, indent, sortKeys, level + 1);
                });
                break;
            }
            default:
                throw new JinjaError($"tojson cannot serialize {JinjaValues.TypeName(value)}");
        }
    }

    private static void WriteContainer(MarkedStringBuilder b, char open, char close, int count, int? indent, int level, Action<int> writeItem)
    {
        b.Append(open.ToString());
        if (count == 0)
        {
            b.Append(close.ToString());
            return;
        }
        for (int i = 0; i < count; i++)
        {
            if (i > 0) b.Append(indent is null ? ", " : ",");
            if (indent is int n) b.Append("\n" + new string(' ', n * (level + 1)));
            writeItem(i);
        }
        if (indent is int m) b.Append("\n" + new string(' ', m * level));
        b.Append(close.ToString());
    }

    private static void WriteString(MarkedStringBuilder b, MarkedString s)
    {
        b.Append("\"");
        for (int i = 0; i < s.Length; i++)
        {
            char c = s.Text[i];
            string escaped = c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                < ' ' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            };
            b.Append(escaped, s.IsDataAt(i));
        }
        b.Append("\"");
    }
}
