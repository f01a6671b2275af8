namespace KvSharp.Persistence;

/// <summary>Whether a saved session can be restored into a live one: same model, same KV layout, a context and policy that hold it.</summary>
public static class SessionCompatibility
{
    /// <summary>Throws <see cref="SessionFileException"/> naming the first thing in <paramref name="saved"/> that <paramref name="target"/> (a live session's description) cannot take.</summary>
    public static void Check(SavedSession saved, SavedSession target)
    {
        if (saved.Model.FirstDifference(target.Model) is { } model)
            throw new SessionFileException($"session file was saved from another model: {model} (file vs loaded model)");
        if (saved.Kv.TypeName != target.Kv.TypeName)
            throw new SessionFileException($"session file holds a {saved.Kv.TypeName} KV cache but this session stores {target.Kv.TypeName}: restore it into a session with the same KV type");
        if (target.Kv.ValuesAreKeys && !saved.Kv.ValuesAreKeys && saved.FormatVersion < SessionFile.Version)
            throw new SessionFileException($"session file is version {saved.FormatVersion}, which holds a latent model's rows twice (as keys and as values); " +
                $"this build keeps each row once (version {SessionFile.Version}) and does not read it: compute the session again and save it");
        if (saved.Kv != target.Kv)
            throw new SessionFileException($"session file's KV layout {saved.Kv} differs from this session's {target.Kv}");
        if (saved.Tokens.Length > target.ContextLength)
            throw new SessionFileException($"session file holds {saved.Tokens.Length} tokens, more than this session's context length of {target.ContextLength}");
        if ((saved.ContextOverflow, saved.ContextShiftKeep, saved.ContextShiftDiscard) != (target.ContextOverflow, target.ContextShiftKeep, target.ContextShiftDiscard))
            throw new SessionFileException($"session file's context overflow policy ({Policy(saved)}) differs from this session's ({Policy(target)})");
    }

    private static string Policy(SavedSession s) =>
        $"{s.ContextOverflow}, keep {s.ContextShiftKeep?.ToString() ?? "default"}, discard {s.ContextShiftDiscard?.ToString() ?? "default"}";
}
