namespace KvSharp.Engine;

/// <summary>
/// Sessions are made from a model here, in Engine, so that <see cref="LlmModel"/> knows nothing of the engine built
/// on it: Engine depends on the model, never the reverse. <c>model.CreateSession(...)</c> reads as it always did.
/// </summary>
public static class LlmModelSessions
{
    /// <summary>A new conversation with <paramref name="model"/>, with its own KV cache.</summary>
    public static InferenceSession CreateSession(this LlmModel model, SessionOptions? options = null) =>
        new(model, options ?? new SessionOptions());
}
