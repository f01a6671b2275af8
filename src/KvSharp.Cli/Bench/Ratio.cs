using System.Text.Json.Nodes;

namespace KvSharp.Cli.Bench;

/// <summary>
/// A ratio that may have nothing to divide by (no contiguous session fits the budget, a run with no decode steps).
/// Such a ratio is undefined, not infinite: JSON gets null (System.Text.Json refuses Infinity and NaN, and readers
/// of the file would choke on them too) and the table says why in words.
/// </summary>
internal readonly record struct Ratio(double Numerator, double Denominator)
{
    public double? Value => Denominator > 0 && double.IsFinite(Numerator / Denominator) ? Numerator / Denominator : null;

    public JsonNode? Json => Value is double v ? JsonValue.Create(v) : null;

    /// <summary>The ratio as "{value:format}{suffix}", or <paramref name="undefined"/> when there is nothing to divide by.</summary>
    public string Text(string format, string suffix = "x", string undefined = "n/a") =>
        Value is double v ? v.ToString(format, System.Globalization.CultureInfo.InvariantCulture) + suffix : undefined;
}
