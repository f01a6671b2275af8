namespace KvSharp.Server.Generation;

/// <summary>OpenAI's usage block; cached_tokens are the prompt tokens the prefix cache served (not computed).</summary>
public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens, PromptTokensDetails PromptTokensDetails)
{
    public static Usage Of(int prompt, int completion, int cached) => new(prompt, completion, prompt + completion, new PromptTokensDetails(cached));
}

public sealed record PromptTokensDetails(int CachedTokens);
