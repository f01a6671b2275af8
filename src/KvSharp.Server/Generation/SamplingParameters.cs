using System.Text.Json;
using System.Text.Json.Serialization;

namespace KvSharp.Server.Generation;

/// <summary>
/// The request fields OpenAI's completions and chat completions share: which model, how many tokens, how to sample,
/// when to stop, how many choices, streaming; plus the extensions llama-server and vLLM accept (top_k, min_p,
/// repetition_penalty, ignore_eos), vLLM's cache_salt, and KvSharp's kv_policy. Each endpoint's request derives from it.
/// </summary>
public class SamplingParameters
{
    public string? Model { get; set; }
    public int? MaxTokens { get; set; }
    /// <summary>Default 1 (OpenAI's); 0 is greedy.</summary>
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public float? RepetitionPenalty { get; set; }
    /// <summary>Same seed, prompt and parameters, same output; absent: a random seed.</summary>
    public long? Seed { get; set; }
    /// <summary>A string or a list of strings.</summary>
    public JsonElement Stop { get; set; }
    /// <summary>OpenAI's logit_bias: an object from token ids (as strings) to a bias in [-100, 100] added to their logits.</summary>
    public JsonElement LogitBias { get; set; }
    public int? N { get; set; }
    public bool? Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }
    /// <summary>Requests with different salts never share prefix-cache blocks (tenants cannot probe each other's prompts).</summary>
    public string? CacheSalt { get; set; }
    /// <summary>Go on past the model's end-of-generation tokens, up to max_tokens.</summary>
    public bool? IgnoreEos { get; set; }
    /// <summary>vLLM's: the fewest tokens to generate before an end-of-generation or stop token, or a stop string, may end the reply.</summary>
    public int? MinTokens { get; set; }
    /// <summary>vLLM's: token ids that end the reply as the model's end-of-generation token does.</summary>
    public List<int>? StopTokenIds { get; set; }
    /// <summary>
    /// vLLM's: keep only the prompt's last k tokens (left truncation; -1: as many as the context holds with one to
    /// generate). Applied to the tokenized prompt, a chat's rendered one included (<see cref="EngineRequests.Truncated"/>).
    /// </summary>
    public int? TruncatePromptTokens { get; set; }
    /// <summary>
    /// vLLM's: report the log-probability of each prompt token after the first, with this many most likely tokens at
    /// each place (0 to 20), each with its rank and text (<see cref="PromptLogprobsFormat"/>). The prompt is then
    /// computed whole (no prefix-cache hit), and max_tokens may be 0 (score only).
    /// </summary>
    public int? PromptLogprobs { get; set; }
    /// <summary>vLLM's: a JSON schema the reply must be a value of (<see cref="OtherServersFields.GuidedSchema"/>).</summary>
    public JsonElement GuidedJson { get; set; }
    /// <summary>llama-server's: the same, under its name.</summary>
    public JsonElement JsonSchema { get; set; }
    /// <summary>
    /// Other servers' fields that would change the output and that this one does not do, read only to refuse them with a
    /// 400 naming the field rather than answer as if they had not been sent (<see cref="OtherServersFields"/>).
    /// </summary>
    public JsonElement GuidedRegex { get; set; }
    public JsonElement GuidedChoice { get; set; }
    public JsonElement GuidedGrammar { get; set; }
    public JsonElement Grammar { get; set; }
    public JsonElement UseBeamSearch { get; set; }
    public JsonElement Mirostat { get; set; }
    public JsonElement TypicalP { get; set; }
    public JsonElement DryMultiplier { get; set; }
    public JsonElement XtcProbability { get; set; }
    public JsonElement IncludeStopStrInOutput { get; set; }
    /// <summary>llama-server's name for max_tokens (-1: until the context ends), taken where max_tokens is absent.</summary>
    public int? NPredict { get; set; }
    /// <summary>llama-server's name for repetition_penalty, taken where repetition_penalty is absent.</summary>
    public float? RepeatPenalty { get; set; }
    /// <summary>
    /// llama-server's window of the penalties: the last N tokens they count (default 64, as llama.cpp's; 0: none, so
    /// the penalties do nothing; -1: the whole context). repeat_last_n is its older name.
    /// </summary>
    public int? PenaltyLastN { get; set; }
    public int? RepeatLastN { get; set; }
    /// <summary>
    /// The request's other fields, kept to refuse other servers' output-changing ones that no property reads by name
    /// (<see cref="OtherServersFields.Refuse"/>); a field no server defines is ignored, as OpenAI ignores extra fields.
    /// </summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? OtherFields { get; set; }
    /// <summary>
    /// Which positions this request's KV cache keeps: <c>full</c>, <c>window:W</c>, <c>sinks:S+window:W</c>,
    /// <c>h2o:B[+recent:R]</c> or <c>snapkv:B[+obs:O]</c>, as
    /// <c>kvsharp run --kv-policy</c>; absent: the server's default (<c>kvsharp serve --kv-policy</c>).
    /// </summary>
    public string? KvPolicy { get; set; }
}

public sealed class StreamOptions
{
    /// <summary>Send a last chunk with the usage (and no choices) before <c>data: [DONE]</c>.</summary>
    public bool? IncludeUsage { get; set; }
}
