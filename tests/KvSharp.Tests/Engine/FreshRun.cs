using KvSharp.Engine;

namespace KvSharp.Tests.Engine;

/// <summary>A session reset, then one generation after <c>prompt</c>: its text, the token ids it generated and its stats.</summary>
internal static class FreshRun
{
    public static (string Text, int[] Tokens, GenerationStats Stats) Of(InferenceSession session, IReadOnlyList<int> prompt, GenerationOptions options)
    {
        session.Reset();
        string text = string.Concat(session.GenerateTokens(prompt, options));
        return (text, session.Tokens.Skip(prompt.Count).ToArray(), session.LastStats!);
    }
}
