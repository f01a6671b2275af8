namespace KvSharp.Cli.Bench;

/// <summary>A plain text table: right-aligned columns, a header and a rule.</summary>
public sealed class BenchTable(params string[] headers)
{
    private readonly List<string[]> _rows = [];

    public void Add(params string[] cells) => _rows.Add(cells);

    public void Write(TextWriter w)
    {
        var widths = headers.Select(h => h.Length).ToArray();
        foreach (var r in _rows)
            for (int i = 0; i < r.Length && i < widths.Length; i++) widths[i] = Math.Max(widths[i], r[i].Length);
        string Line(IReadOnlyList<string> cells) =>
            "| " + string.Join(" | ", cells.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))) + " |";
        w.WriteLine(Line(headers));
        w.WriteLine("|" + string.Join("|", widths.Select((x, i) => i == 0 ? new string('-', x + 2) : new string('-', x + 1) + ":")) + "|");
        foreach (var r in _rows) w.WriteLine(Line(r));
        w.Flush();
    }
}
