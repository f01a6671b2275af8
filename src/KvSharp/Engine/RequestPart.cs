namespace KvSharp.Engine;

/// <summary>
/// The part of a request a rejection blames (<see cref="RequestHandle.RejectedPart"/>), so that a frontend can name its
/// own field for it: the HTTP server's 400 says <c>max_tokens</c>, or <c>messages</c> / <c>prompt</c>.
/// </summary>
public enum RequestPart
{
    /// <summary>No single part: the request is refused for what it asks of the engine as a whole.</summary>
    None,
    /// <summary>The prompt: empty, a token outside the vocabulary, or too long by itself for the context or the KV budget.</summary>
    Prompt,
    /// <summary>The tokens to generate: fewer than one, or more than the context or the KV budget leaves after the prompt.</summary>
    MaxTokens,
}
