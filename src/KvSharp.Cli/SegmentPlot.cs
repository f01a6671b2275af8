using KvSharp.Evaluation;

namespace KvSharp.Cli;

/// <summary>
/// `kvsharp eval --plot FILE`: perplexity per segment of the text, one line per run, on a log scale (a cache that
/// breaks goes up by orders of magnitude); SVG or PNG by the file's extension, drawn by ScottPlot.
/// </summary>
internal static class SegmentPlot
{
    public static void Write(EvalReport report, string path, string title)
    {
        string extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension is not (".svg" or ".png"))
            throw new ArgumentException($"--plot {path}: the file must end in .svg or .png");
        var plot = new ScottPlot.Plot();
        foreach (var run in report.Runs)
        {
            var points = run.SegmentPerplexity.Select((ppl, i) => (x: (i + 1.0) * report.SegmentTokens, y: ppl))
                .Where(p => double.IsFinite(p.y) && p.y > 0).ToArray();
            var line = plot.Add.Scatter(points.Select(p => p.x).ToArray(), points.Select(p => Math.Log10(p.y)).ToArray());
            line.LegendText = run.KeyType == KvSharp.Cache.KvElementType.F32 ? run.Policy : $"{run.Policy} {run.KeyType}";
            line.MarkerSize = 3;
        }
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = y => Math.Pow(10, y).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
        };
        plot.Title(title);
        plot.XLabel($"tokens of text (end of each {report.SegmentTokens}-token segment)");
        plot.YLabel("perplexity (log scale)");
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        if (extension == ".svg") plot.SaveSvg(path, 900, 500);
        else plot.SavePng(path, 900, 500);
    }
}
