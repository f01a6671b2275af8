using System.CommandLine;
using KvSharp.Cache.Policies;

namespace KvSharp.Cli;

/// <summary>A cache policy option (<see cref="KvCachePolicy.Parse"/>); a bad value is a parse error that names it.</summary>
internal static class KvPolicyOption
{
    public const string Forms = "full, window:W, sinks:S+window:W (StreamingLLM: the first S positions plus the last W), " +
        "h2o:B[+recent:R] (B heaviest-attended positions per head, the R most recent among them; default R = B/2) or " +
        "snapkv:B[+obs:O] (each prompt compressed to B per head by its last O queries' votes; default O = min(16, B/2))";

    public static Option<KvCachePolicy?> Single(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = r => ParseOne(r, r.Tokens.Count == 0 ? "" : r.Tokens[0].Value),
    };

    /// <summary>Repeatable, each value one policy or several separated by commas.</summary>
    public static Option<KvCachePolicy[]> Many(string name, string description) => new(name)
    {
        Description = description,
        AllowMultipleArgumentsPerToken = false,
        CustomParser = r => r.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(v => ParseOne(r, v)).OfType<KvCachePolicy>().ToArray(),
    };

    /// <summary>Checks <paramref name="policy"/> against the context, the error naming <paramref name="option"/>.</summary>
    public static void CheckFits(string option, KvCachePolicy? policy, int context)
    {
        try { policy?.Validate(context); }
        catch (ArgumentException e) { throw new ArgumentException($"{option}: {e.Message} (--context raises it)"); }
    }

    private static KvCachePolicy? ParseOne(System.CommandLine.Parsing.ArgumentResult r, string value)
    {
        try { return KvCachePolicy.Parse(value); }
        catch (FormatException e)
        {
            r.AddError($"{((System.CommandLine.Parsing.OptionResult)r.Parent!).Option.Name}: {e.Message}");
            return null;
        }
    }
}
