namespace KvSharp.Models;

/// <summary>A sequence would grow past the session's context length.</summary>
public sealed class ContextOverflowException : InvalidOperationException
{
    public int CachedTokens { get; }
    public int NewTokens { get; }
    public int ContextLength { get; }

    public ContextOverflowException(int cachedTokens, int newTokens, int contextLength)
        : base($"{cachedTokens} cached + {newTokens} new tokens exceed the context length of {contextLength}")
    {
        CachedTokens = cachedTokens;
        NewTokens = newTokens;
        ContextLength = contextLength;
    }
}
