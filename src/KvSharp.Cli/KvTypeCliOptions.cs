using System.CommandLine;
using KvSharp.Cache;

namespace KvSharp.Cli;

/// <summary>
/// How a command's KV cache stores keys and values: --kv-type for both, --kv-type-k and --kv-type-v for each side
/// (llama.cpp's -ctk / -ctv). A side given on its own wins over --kv-type only where they agree: --kv-type q8_0 with
/// --kv-type-k f16 is refused, since either reading of it would surprise someone.
/// </summary>
internal sealed class KvTypeCliOptions
{
    private readonly Option<Choice<KvElementType>> _both = CommonOptions.KvType();
    private readonly Option<Choice<KvElementType>> _keys = Side("--kv-type-k", "keys");
    private readonly Option<Choice<KvElementType>> _values = Side("--kv-type-v", "values");

    /// <summary>The options, in the order help lists them.</summary>
    public IEnumerable<Option> All => [_both, _keys, _values];

    private static Option<Choice<KvElementType>> Side(string name, string side) => ChoiceOption.Create(name,
        $"how the KV cache stores {side}, where they differ from --kv-type (llama.cpp's {(side == "keys" ? "-ctk" : "-ctv")}; default: --kv-type)",
        ChoiceOption.Of<KvElementType>(), KvElementType.F32, CommonOptions.ParseKvAlias);

    /// <summary>The keys' and values' types; throws one line naming the options when --kv-type disagrees with a side.</summary>
    public KvTypes Read(ParseResult r)
    {
        KvElementType both = r.GetValue(_both).Value;
        bool bothGiven = Given(r, _both);
        return new KvTypes(ReadSide(r, _keys, both, bothGiven), ReadSide(r, _values, both, bothGiven));
    }

    private KvElementType ReadSide(ParseResult r, Option<Choice<KvElementType>> side, KvElementType both, bool bothGiven)
    {
        if (!Given(r, side)) return both;
        var value = r.GetValue(side);
        if (bothGiven && value.Value != both)
            throw new ArgumentException(
                $"{side.Name} {value.Name} contradicts --kv-type {r.GetValue(_both).Name}, which sets keys and values; give --kv-type-k and --kv-type-v without --kv-type");
        return value.Value;
    }

    private static bool Given(ParseResult r, Option option) => r.GetResult(option) is { Implicit: false };
}

/// <summary>The types a command's KV cache stores keys and values as.</summary>
internal readonly record struct KvTypes(KvElementType Keys, KvElementType Values)
{
    public KvElementFormat Format => KvElementFormat.Of(Keys, Values);
}
