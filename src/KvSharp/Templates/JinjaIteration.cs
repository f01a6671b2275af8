namespace KvSharp.Templates;

/// <summary>What a for loop (and filters that take a sequence) iterate over, as Python iterates it.</summary>
internal static class JinjaIteration
{
    /// <summary>
    /// A list's items, a mapping's keys, a string's characters; undefined iterates as empty, and so does none (Jinja2
    /// would raise: templates written for llama.cpp, where absent tools are undefined, iterate them unchecked).
    /// </summary>
    public static List<object?> Items(object? value) => value switch
    {
        List<object?> list => list,
        JinjaDict dict => dict.Keys.Select(k => (object?)dict.KeyValue(k)).ToList(),
        MarkedString s => Enumerable.Range(0, s.Length).Select(i => (object?)s.Substring(i, 1)).ToList(),
        JinjaUndefined or null => [],
        _ => throw new JinjaError($"{JinjaValues.TypeName(value)} is not iterable"),
    };
}
