using System.Text.Json;
using KvSharp.Server.Generation;

namespace KvSharp.Server.Completions;

/// <summary>OpenAI's <c>POST /v1/completions</c> body (the shared fields are in <see cref="SamplingParameters"/>).</summary>
public sealed class CompletionRequest : SamplingParameters
{
    /// <summary>A string, an array of token ids, or a list of strings or of arrays of ids (each its own prompt, all run at once).</summary>
    public JsonElement Prompt { get; set; }
    /// <summary>Report each token's log-probability and those of this many most likely alternatives (0 to 20).</summary>
    public int? Logprobs { get; set; }
    /// <summary>
    /// Each choice starts with its prompt's text; with <see cref="Logprobs"/>, its logprobs start with the prompt's
    /// tokens (the first one's null). max_tokens may then be 0: the prompt alone, scored.
    /// </summary>
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
