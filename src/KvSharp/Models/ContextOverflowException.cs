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

    /// <summary>The same, with why no room could be made (e.g. by a context shift).</summary>
    public ContextOverflowException(int cachedTokens, int newTokens, int contextLength, string reason)
        : base($"{cachedTokens} cached + {newTokens} new tokens exceed the context length of {contextLength}: {reason}")
    {
        CachedTokens = cachedTokens;
        NewTokens = newTokens;
        ContextLength = contextLength;
    }
}
