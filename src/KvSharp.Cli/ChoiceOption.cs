using System.CommandLine;

namespace KvSharp.Cli;

/// <summary>
/// A value picked by one of a few lowercase names. Its <see cref="ToString"/> is the name, so help shows
/// "[default: contiguous]" where an enum would show "Contiguous".
/// </summary>
internal readonly record struct Choice<T>(string Name, T Value)
{
    public override string ToString() => Name;
}

/// <summary>
/// Options whose value is one of a fixed set of names, shown and accepted in lowercase (any case is accepted), with one
/// error line naming the option and every allowed value ("--cache must be one of none, contiguous, static; got 'paged'").
/// </summary>
internal static class ChoiceOption
{
    /// <param name="aliasOf">Extra spellings mapped to a value (e.g. "float16"); they are accepted but not listed.</param>
    public static Option<Choice<T>> Create<T>(string name, string description, IReadOnlyList<Choice<T>> choices, T defaultValue,
        Func<string, T?>? aliasOf = null, params string[] aliases) where T : struct
    {
        var fallback = choices.First(c => EqualityComparer<T>.Default.Equals(c.Value, defaultValue));
        string names = string.Join(", ", choices.Select(c => c.Name));
        return new Option<Choice<T>>(name, aliases)
        {
            Description = description,
            HelpName = string.Join('|', choices.Select(c => c.Name)),
            DefaultValueFactory = _ => fallback,
            CustomParser = r =>
            {
                if (r.Tokens.Count == 0) return fallback;
                string text = r.Tokens[^1].Value;
                foreach (var c in choices)
                    if (string.Equals(c.Name, text.Trim(), StringComparison.OrdinalIgnoreCase)) return c;
                if (aliasOf?.Invoke(text) is T value) return choices.First(c => EqualityComparer<T>.Default.Equals(c.Value, value));
                r.AddError($"{name} must be one of {names}; got '{text}'");
                return fallback;
            },
        };
    }

    /// <summary>Every value of an enum, named by its lowercase name (KvCacheMode.Static: "static", KvElementType.Q8_0: "q8_0").</summary>
    public static Choice<T>[] Of<T>() where T : struct, Enum =>
        Enum.GetValues<T>().Select(v => new Choice<T>(v.ToString().ToLowerInvariant(), v)).ToArray();
}
