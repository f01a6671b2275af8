namespace KvSharp.Templates;

/// <summary>
/// x.name, x[i], x[a:b:c] and "in", with Jinja2's lookup rules: x.name tries the mapping key, then a method;
/// a missing key, attribute or index gives undefined, but anything read from undefined itself is an error.
/// </summary>
internal static class JinjaAccess
{
    public static object? Attribute(object? target, string name)
    {
        switch (target)
        {
            case JinjaUndefined u:
                throw new JinjaError($"cannot read '.{name}': {u.Description}");
            case JinjaDict dict:
                if (dict.TryGetValue(name, out var value)) return value;
                return JinjaMethods.ForMapping(dict, name) ?? (object?)new JinjaUndefined($"the mapping has no key '{name}'");
            case MarkedString s:
                return JinjaMethods.ForString(s, name) ?? (object?)new JinjaUndefined($"a string has no attribute '{name}'");
            case List<object?> list:
                return JinjaMethods.ForList(list, name) ?? (object?)new JinjaUndefined($"a list has no attribute '{name}'");
            default:
                return new JinjaUndefined($"{JinjaValues.TypeName(target)} has no attribute '{name}'");
        }
    }

    public static object? Index(object? target, object? index)
    {
        switch (target)
        {
            case JinjaUndefined u:
                throw new JinjaError($"cannot index [{JinjaValues.Repr(index)}]: {u.Description}");
            case JinjaDict dict:
            {
                string key = JinjaValues.ToText(index).Text;
                return dict.TryGetValue(key, out var value) ? value : new JinjaUndefined($"the mapping has no key '{key}'");
            }
            case List<object?> list:
            {
                if (index is not (long or bool)) return Attribute(target, JinjaValues.ToText(index).Text);
                long i = index is bool b ? (b ? 1 : 0) : (long)index;
                if (i < 0) i += list.Count;
                return i >= 0 && i < list.Count ? list[(int)i] : new JinjaUndefined($"list index {index} is out of range (length {list.Count})");
            }
            case MarkedString s:
            {
                if (index is not long i) return Attribute(target, JinjaValues.ToText(index).Text);
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s.Substring((int)i, 1) : new JinjaUndefined($"string index {index} is out of range (length {s.Length})");
            }
            default:
                return new JinjaUndefined($"{JinjaValues.TypeName(target)} cannot be indexed");
        }
    }

    /// <summary>Python slicing of a list or string: x[start:stop:step], negative positions from the end, step may be negative.</summary>
    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        int length = target switch
        {
            List<object?> list => list.Count,
            MarkedString s => s.Length,
            JinjaUndefined u => throw new JinjaError($"cannot slice: {u.Description}"),
            _ => throw new JinjaError($"{JinjaValues.TypeName(target)} cannot be sliced"),
        };
        long stepValue = step is null ? 1 : AsIndex(step, "step");
        if (stepValue == 0) throw new JinjaError("slice step cannot be zero");
        var indices = SliceIndices(length, start is null ? null : AsIndex(start, "start"), stop is null ? null : AsIndex(stop, "stop"), stepValue);
        if (target is List<object?> items) return indices.Select(i => items[i]).ToList();
        var text = (MarkedString)target!;
        if (stepValue == 1) return indices.Count == 0 ? MarkedString.Empty : text.Substring(indices[0], indices.Count);
        var b = new MarkedStringBuilder();
        foreach (int i in indices) b.Append(text.Text[i], text.IsDataAt(i));
        return b.ToMarked();
    }

    private static long AsIndex(object? v, string what) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new JinjaError($"slice {what} must be an integer, got {JinjaValues.TypeName(v)}"),
    };

    /// <summary>The positions Python's slice(start, stop, step).indices(length) visits.</summary>
    private static List<int> SliceIndices(int length, long? start, long? stop, long step)
    {
        var result = new List<int>();
        if (step > 0)
        {
            long from = Clamp(start ?? 0, length, 0, length);
            long to = Clamp(stop ?? length, length, 0, length);
            for (long i = from; i < to; i += step) result.Add((int)i);
        }
        else
        {
            long from = start is null ? length - 1 : Clamp(start.Value, length, -1, length - 1);
            long to = stop is null ? -1 : Clamp(stop.Value, length, -1, length - 1);
            for (long i = from; i > to; i += step) result.Add((int)i);
        }
        return result;
    }

    private static long Clamp(long index, int length, long min, long max)
    {
        if (index < 0) index += length;
        return Math.Clamp(index, min, max);
    }

    /// <summary>item in container: a substring, a list element, a mapping key; nothing is in undefined.</summary>
    public static bool Contains(object? container, object? item) => container switch
    {
        MarkedString s => item is MarkedString sub ? s.Text.Contains(sub.Text, StringComparison.Ordinal)
            : throw new JinjaError($"'in <string>' needs a string on the left, got {JinjaValues.TypeName(item)}"),
        List<object?> list => list.Any(x => JinjaValues.AreEqual(x, item)),
        JinjaDict dict => dict.ContainsKey(JinjaValues.ToText(item).Text),
        JinjaUndefined => false,
        _ => throw new JinjaError($"'in' needs a string, list or mapping on the right, got {JinjaValues.TypeName(container)}"),
    };
}
