namespace KvSharp.Sampling;

/// <summary>
/// The whitespace a constrained JSON reply may write between two tokens, as llama.cpp's JSON grammars allow it
/// (<c>space ::= | " " | "\n" [ \t]{0,20}</c>): nothing, one space, or a newline and at most
/// <see cref="MaxIndent"/> spaces or tabs. So pretty-printed JSON passes, and a model cannot pad a reply with runs of
/// spaces and newlines (stories260K, held to a schema, wrote " \n" pairs between every two tokens until max_tokens
/// when runs of any 16 whitespace bytes were allowed).
/// </summary>
internal static class JsonWhitespace
{
    public const int MaxIndent = 20;

    public static bool Is(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r';

    /// <summary>
    /// Takes whitespace byte <paramref name="b"/> of a run; false when the run cannot go on with it. <paramref name="run"/>
    /// is 0 before the run's first byte, -1 after a lone space, and 1 + the indentation after a newline.
    /// </summary>
    public static bool Next(ref int run, byte b)
    {
        if (run == 0 && b == ' ') run = -1;
        else if (run == 0 && b == '\n') run = 1;
        else if (run >= 1 && run <= MaxIndent && b is (byte)' ' or (byte)'\t') run++;
        else return false;
        return true;
    }
}
