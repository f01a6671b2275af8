using KvSharp.Engine;
using KvSharp.Persistence;

namespace KvSharp.Cli;

/// <summary>
/// `kvsharp run --prompt-cache FILE`, as llama.cpp's: a saved session (<see cref="SessionFile"/>) whose tokens start
/// the new prompt spares their prefill; after the run the session is saved back for the next one.
/// </summary>
internal static class PromptCacheFile
{
    /// <summary>
    /// Restores <paramref name="path"/> into the empty <paramref name="session"/> if it exists, keeps the prefix it
    /// shares with <paramref name="tokens"/> (a first turn's, BOS included) and returns the prompt tokens still to run.
    /// A file from another model or KV type, or a damaged one, is an error that names it.
    /// </summary>
    public static int[] Restore(InferenceSession session, string path, int[] tokens, TextWriter log)
    {
        if (!File.Exists(path))
        {
            log.WriteLine($"[kvsharp] prompt cache {path} does not exist yet: it will be written after this run");
            return tokens;
        }
        try
        {
            using var file = File.OpenRead(path);
            session.Load(file);
        }
        catch (SessionFileException e)
        {
            throw new SessionFileException($"--prompt-cache {path}: {e.Message}");
        }
        // The last prompt token is always run: its logits start the reply.
        int common = PromptResume.KeepCommonPrefix(session, tokens, Math.Max(0, tokens.Length - 1));
        log.WriteLine($"[kvsharp] prompt cache {path}: {common} of {tokens.Length} prompt tokens restored, {tokens.Length - common} to compute");
        return tokens[common..];
    }

    /// <summary>Saves the session to <paramref name="path"/> through a temporary file and a rename, so a crash never leaves half a file.</summary>
    public static void Save(InferenceSession session, string path)
    {
        string temporary = $"{path}.tmp-{Environment.ProcessId}";
        try
        {
            using (var file = File.Create(temporary)) session.Save(file);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }
}
