using KvSharp.Sampling;

namespace KvSharp.Server.Generation;

/// <summary>
/// How one endpoint shapes its stream's chunks (completions: choices with text; chat completions: choices with a
/// delta): the generation loop in <see cref="GenerationRun"/> is shared, only the JSON differs. One per request.
/// </summary>
internal interface IChunkFormat
{
    /// <summary>
    /// New text of choice <paramref name="choice"/>, and the logprobs of the tokens that made it (null unless asked
    /// for): its chunks (usually one; none when the format has nothing to send yet).
    /// </summary>
    IReadOnlyList<byte[]> Text(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs);

    /// <summary>
    /// Choice <paramref name="choice"/> generated token <paramref name="token"/> (its text comes through
    /// <see cref="Text"/>, with the text of the tokens beside it): for a format that reads the tokens themselves.
    /// Returns text to follow the token's own in what <see cref="Text"/> gets (a chat reply with tools reads the
    /// special tokens its text does not show in their place, as its whole reading does); usually none.
    /// </summary>
    string Generated(int choice, int token) => "";

    /// <summary>
    /// The event that ends a stream that failed after it began (the model could not compute a step): OpenAI's error
    /// body, <c>{"error": {...}}</c>, unless the format says otherwise.
    /// </summary>
    IReadOnlyList<byte[]> Error(Errors.ApiError error) => [System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(Errors.ErrorBody.From(error), Json.ServerJson.Default.ErrorBody)];

    /// <summary>What goes out first, as the stream begins (before the prompt is computed); usually nothing.</summary>
    IReadOnlyList<byte[]> Start() => [];

    /// <summary>
    /// What goes out for choice <paramref name="choice"/> ahead of anything else of it, once its prompt has been computed
    /// (a completion's echoed prompt); usually nothing.
    /// </summary>
    IReadOnlyList<byte[]> Opening(int choice) => [];

    /// <summary>Choice <paramref name="choice"/> ended ("stop" or "length"): the chunks that end it (usually one).</summary>
    IReadOnlyList<byte[]> Finish(int choice, string finishReason);

    /// <summary>The last chunk when stream_options.include_usage is set: no choices, the usage.</summary>
    IReadOnlyList<byte[]> Usage(Usage usage);

    /// <summary>Whether the stream ends with <c>data: [DONE]</c> (OpenAI's completions and chat completions do).</summary>
    bool EndsWithDone => true;
}
