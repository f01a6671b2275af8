using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Templates;

namespace KvSharp.Extensions.AI;

/// <summary>How a <see cref="KvSharpChatClient"/> renders, samples and keeps its conversations.</summary>
public sealed record KvSharpChatClientOptions
{
    /// <summary>The chat template; null: the model's own, else the fallback (<see cref="ChatTemplate.ForModel"/>).</summary>
    public ChatTemplate? Template { get; init; }
    /// <summary>The session every conversation gets (context length, KV element type, cache mode).</summary>
    public SessionOptions Session { get; init; } = new();
    /// <summary>
    /// Most conversations alive at once, each with its own KV cache; starting one more releases the least recently used
    /// (its id then names nothing). The stateless conversation of calls without a ConversationId is not counted.
    /// </summary>
    public int MaxConversations { get; init; } = 16;
    /// <summary>Tokens generated when <c>ChatOptions.MaxOutputTokens</c> is not set.</summary>
    public int DefaultMaxOutputTokens { get; init; } = 256;
    /// <summary>Sampling when ChatOptions set nothing (default greedy); the options a call sets replace these fields.</summary>
    public SamplingOptions DefaultSampling { get; init; } = SamplingOptions.Greedy;
    /// <summary>The model id reported and checked against <c>ChatOptions.ModelId</c>; null: the model file's name.</summary>
    public string? ModelId { get; init; }
}
