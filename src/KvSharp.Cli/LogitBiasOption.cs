using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace KvSharp.Cli;

/// <summary>
/// `--logit-bias TOKEN_ID(+/-)BIAS`, repeatable, as llama.cpp writes it: `15043+1` adds 1 to token 15043's logit,
/// `15043-inf` rules the token out. `TOKEN_ID=BIAS` is taken too. Whether the id is one of the model's is checked once
/// the model is loaded (<see cref="Sampling.Sampler"/>).
/// </summary>
internal static class LogitBiasOption
{
    public static Option<IReadOnlyDictionary<int, float>?> Create() => new("--logit-bias")
    {
        Description = "add BIAS to a token's logit, TOKEN_ID+BIAS or TOKEN_ID-BIAS (e.g. 15043+1, 15043-inf to rule it out); repeatable",
        Arity = ArgumentArity.ZeroOrMore,
        CustomParser = Parse,
    };

    private static IReadOnlyDictionary<int, float>? Parse(ArgumentResult result)
    {
        if (result.Tokens.Count == 0) return null;
        var map = new Dictionary<int, float>();
        foreach (var token in result.Tokens)
        {
            if (!TryParse(token.Value, out int id, out float bias))
            {
                result.AddError($"--logit-bias must be TOKEN_ID+BIAS, TOKEN_ID-BIAS or TOKEN_ID=BIAS with a finite BIAS or -inf (e.g. 15043+1, 15043-inf), got '{token.Value}'");
                return null;
            }
            if (!map.TryAdd(id, bias))
            {
                result.AddError($"--logit-bias names token {id} twice");
                return null;
            }
        }
        return map;
    }

    internal static bool TryParse(string text, out int id, out float bias)
    {
        id = 0;
        bias = 0;
        int at = 0;
        while (at < text.Length && char.IsAsciiDigit(text[at])) at++;
        if (at == 0 || at == text.Length || !int.TryParse(text.AsSpan(0, at), NumberStyles.None, CultureInfo.InvariantCulture, out id)) return false;
        char sign = text[at];
        if (sign is not ('+' or '-' or '=')) return false;
        // '=' is followed by a signed number; '+' and '-' are the number's own sign.
        var number = sign == '=' ? text.AsSpan(at + 1) : text.AsSpan(at);
        if (number.Equals("-inf", StringComparison.OrdinalIgnoreCase))
        {
            bias = float.NegativeInfinity;
            return true;
        }
        return float.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out bias) && float.IsFinite(bias);
    }
}
