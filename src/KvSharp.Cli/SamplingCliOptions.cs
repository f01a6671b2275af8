using System.CommandLine;
using KvSharp.Sampling;

namespace KvSharp.Cli;

/// <summary>
/// The sampling options a generating command takes (`run`, `chat`), declared and read in one place; each command
/// gives its own defaults (`run` greedy, `chat` llama.cpp's 0.8 / 40 / 0.95).
/// </summary>
internal sealed class SamplingCliOptions
{
    private readonly Option<float> _temperature, _topP, _minP, _repeat, _presence;
    private readonly Option<int> _topK;
    private readonly Option<ulong> _seed;
    private readonly Option<IReadOnlyDictionary<int, float>?> _logitBias = LogitBiasOption.Create();

    public SamplingCliOptions(SamplingOptions defaults)
    {
        _temperature = NumberOption.Create("--temperature", "sampling temperature (0 = greedy)", defaults.Temperature, Allowed.AtLeast(0f));
        _topK = NumberOption.Create("--top-k", "keep the k most likely tokens (0 = off)", defaults.TopK, Allowed.AtLeast(0));
        _topP = NumberOption.Create("--top-p", "nucleus sampling threshold (1 = off)", defaults.TopP, Allowed.Between(0f, 1f, minIncluded: false));
        _minP = NumberOption.Create("--min-p", "min-p threshold (0 = off)", defaults.MinP, Allowed.Between(0f, 1f));
        _repeat = NumberOption.Create("--repeat-penalty", "repetition penalty (1 = off)", defaults.RepetitionPenalty, Allowed.Above(0f));
        _presence = NumberOption.Create("--presence-penalty", "presence penalty (0 = off)", defaults.PresencePenalty, Allowed.AnyFinite);
        _seed = NumberOption.Create("--seed", "random seed", defaults.Seed, Allowed.AnyUInt64);
    }

    /// <summary>The options, in the order help lists them.</summary>
    public IEnumerable<Option> All => [_temperature, _topK, _topP, _minP, _repeat, _presence, _seed, _logitBias];

    public SamplingOptions Read(ParseResult r) => new()
    {
        Temperature = r.GetValue(_temperature),
        TopK = r.GetValue(_topK),
        TopP = r.GetValue(_topP),
        MinP = r.GetValue(_minP),
        RepetitionPenalty = r.GetValue(_repeat),
        PresencePenalty = r.GetValue(_presence),
        Seed = r.GetValue(_seed),
        LogitBias = r.GetValue(_logitBias),
    };
}
