using System.Text.Json;
using KvSharp.Server.Generation;

namespace KvSharp.Server.Completions;

/// <summary>OpenAI's <c>POST /v1/completions</c> body (the shared fields are in <see cref="SamplingParameters"/>).</summary>
public sealed class CompletionRequest : SamplingParameters
{
    /// <summary>A string, an array of token ids, or a list holding one string or one array of ids.</summary>
    public JsonElement Prompt { get; set; }
    /// <summary>Report each token's log-probability and those of this many most likely alternatives (0 to 20).</summary>
    public int? Logprobs { get; set; }
    /// <summary>Not supported: true is refused.</summary>
    public bool? Echo { get; set; }
    /// <summary>Not supported: a non-empty suffix is refused.</summary>
    public string? Suffix { get; set; }
    /// <summary>Only 1 or n (best_of candidates would need their log-likelihoods).</summary>
    public int? BestOf { get; set; }
    /// <summary>
    /// kvsharp's: the id of an earlier completion of this server whose prompt and text the (text) prompt starts with;
    /// those are then the token ids the earlier request used and generated (<see cref="Continuations.PromptContinuation"/>).
    /// </summary>
    public string? Continues { get; set; }
}
