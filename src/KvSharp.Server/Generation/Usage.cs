namespace KvSharp.Server.Generation;

/// <summary>OpenAI's usage block; cached_tokens are the prompt tokens the prefix cache served (not computed).</summary>
public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens, PromptTokensDetails PromptTokensDetails)
{
    public static Usage Of(int prompt, int completion, int cached) => new(prompt, completion, prompt + completion, new PromptTokensDetails(cached));

    /// <summary>Two runs' usage together (a completion of several prompts).</summary>
    public static Usage operator +(Usage a, Usage b) =>
        Of(a.PromptTokens + b.PromptTokens, a.CompletionTokens + b.CompletionTokens, a.PromptTokensDetails.CachedTokens + b.PromptTokensDetails.CachedTokens);
}

public sealed record PromptTokensDetails(int CachedTokens);
