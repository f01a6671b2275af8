namespace KvSharp.Engine;

/// <summary>
/// A conversation's whole prompt brought onto a session that already holds an earlier version of it:
/// <see cref="Pending"/> is what is left to feed, <see cref="Cached"/> the prompt tokens the cache already holds,
/// <see cref="New"/> those still to compute, <see cref="Rewound"/> the tokens the session dropped because they differed.
/// </summary>
public readonly record struct PromptResume(int[] Pending, int Cached, int New, int Rewound)
{
    /// <summary>
    /// Brings <paramref name="session"/> to the longest token prefix it shares with <paramref name="prompt"/> (normally
    /// everything up to the last reply) and returns the rest to feed. A chat renders its whole conversation every turn,
    /// so earlier turns are found in the cache, never recomputed; where a template renders them differently (a changed
    /// system prompt, a reply that re-tokenizes differently) the session is rewound to the common prefix, never further.
    /// </summary>
    public static PromptResume Resume(InferenceSession session, int[] prompt)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(prompt);
        int held = session.Tokens.Count;
        // The last prompt token is always fed: its logits start the reply.
        int common = KeepCommonPrefix(session, prompt, Math.Max(0, prompt.Length - 1));
        int rewound = held - common;
        int cached = Math.Min(common, session.Cache.Length);
        return new PromptResume(prompt[common..], cached, prompt.Length - cached, rewound);
    }

    /// <summary>
    /// Truncates <paramref name="session"/> to the longest prefix it shares with <paramref name="tokens"/>, at most
    /// <paramref name="limit"/> tokens long, and returns its length (a rewind to an earlier message renders the messages
    /// kept and calls this).
    /// </summary>
    public static int KeepCommonPrefix(InferenceSession session, IReadOnlyList<int> tokens, int limit)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(tokens);
        var held = session.Tokens;
        int end = Math.Min(limit, Math.Min(held.Count, tokens.Count)), common = 0;
        while (common < end && held[common] == tokens[common]) common++;
        if (common < held.Count) session.Truncate(common);
        return common;
    }
}
