using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace KvSharp.Cli;

/// <summary>
/// The values a number option accepts and how to say so in an error ("a number in (0, 1]"). Floats must also be
/// finite: NaN and infinity fail every range.
/// </summary>
internal sealed record Allowed<T>(Func<T, bool> Accepts, string Text) where T : struct, INumber<T>
{
    public bool Contains(T value) => T.IsFinite(value) && Accepts(value);
}

internal static class Allowed
{
    public static Allowed<int> AtLeast(int min) => new(x => x >= min, $"a whole number >= {min}");

    public static Allowed<int> WholeNumberBetween(int min, int max) => new(x => x >= min && x <= max, $"a whole number from {min} to {max}");

    public static Allowed<long> AtLeast(long min) => new(x => x >= min, $"a whole number >= {min}");

    public static readonly Allowed<ulong> AnyUInt64 = new(_ => true, $"a whole number from 0 to {ulong.MaxValue}");

    public static Allowed<float> Between(float min, float max, bool minIncluded = true) =>
        new(x => (minIncluded ? x >= min : x > min) && x <= max, $"a number in {(minIncluded ? '[' : '(')}{min}, {max}]");

    public static Allowed<double> Between(double min, double max) => new(x => x >= min && x <= max, $"a number in [{min}, {max}]");

    public static Allowed<float> AtLeast(float min) => new(x => x >= min, $"a number >= {min}");

    public static Allowed<double> AtLeast(double min) => new(x => x >= min, $"a number >= {min}");

    public static Allowed<float> Above(float min) => new(x => x > min, $"a number > {min}");

    public static readonly Allowed<float> AnyFinite = new(_ => true, "a finite number");
}

/// <summary>
/// Number options that check their range while the command line is parsed, so a bad value is one line naming the
/// option, what it accepts and what it got ("--top-p must be a number in (0, 1], got 2") instead of a .NET type name
/// or an exception from deep in the library.
/// </summary>
internal static class NumberOption
{
    public static Option<T> Create<T>(string name, string description, T defaultValue, Allowed<T> allowed, params string[] aliases)
        where T : struct, INumber<T> => new(name, aliases)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = r => Parse(r, name, allowed) ?? defaultValue,
    };

    /// <summary>An option with no default value: null when it is not given.</summary>
    public static Option<T?> Optional<T>(string name, string description, Allowed<T> allowed, params string[] aliases)
        where T : struct, INumber<T> => new(name, aliases)
    {
        Description = description,
        CustomParser = r => Parse(r, name, allowed),
    };

    private static T? Parse<T>(ArgumentResult result, string name, Allowed<T> allowed) where T : struct, INumber<T>
    {
        if (result.Tokens.Count == 0) return null;
        string text = result.Tokens[^1].Value;
        var style = typeof(T) == typeof(float) || typeof(T) == typeof(double) ? NumberStyles.Float : NumberStyles.Integer;
        if (!T.TryParse(text, style, CultureInfo.InvariantCulture, out T value) || !allowed.Contains(value))
        {
            result.AddError($"{name} must be {allowed.Text}, got '{text}'");
            return null;
        }
        return value;
    }
}
