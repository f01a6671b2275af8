using KvSharp.Sampling;

namespace KvSharp.Server.Generation;

/// <summary>
/// How one endpoint shapes its stream's chunks (completions: choices with text; chat completions: choices with a
/// delta): the generation loop in <see cref="GenerationRun"/> is shared, only the JSON differs. One per request.
/// </summary>
internal interface IChunkFormat
{
    /// <summary>New text of choice <paramref name="choice"/>, and the logprobs of the tokens that made it (null unless asked for).</summary>
    byte[] Text(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs);

    /// <summary>Choice <paramref name="choice"/> ended ("stop" or "length").</summary>
    byte[] Finish(int choice, string finishReason);

    /// <summary>The last chunk when stream_options.include_usage is set: no choices, the usage.</summary>
    byte[] Usage(Usage usage);
}
