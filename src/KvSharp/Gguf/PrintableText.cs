using System.Text;

namespace KvSharp.Gguf;

/// <summary>
/// Text from a file as it may appear in an error message: a damaged name can be kilobytes of binary with newlines,
/// which would turn a one-line error into a screenful. Control and other non-printable characters become \xNN
/// (\uNNNN above 0xFF) and long text is cut, saying how long it was.
/// </summary>
public static class PrintableText
{
    /// <summary>Characters kept before cutting.</summary>
    public const int MaxChars = 64;

    public static string Of(string text)
    {
        bool clean = text.Length <= MaxChars;
        for (int i = 0; clean && i < text.Length; i++) clean = IsPrintable(text[i]);
        if (clean) return text;

        var b = new StringBuilder(MaxChars + 32);
        int shown = Math.Min(text.Length, MaxChars);
        for (int i = 0; i < shown; i++)
        {
            char c = text[i];
            if (IsPrintable(c)) b.Append(c);
            else if (c <= 0xFF) b.Append($"\\x{(int)c:X2}");
            else b.Append($"\\u{(int)c:X4}");
        }
        if (shown < text.Length) b.Append($"... ({Encoding.UTF8.GetByteCount(text)} bytes)");
        return b.ToString();
    }

    private static bool IsPrintable(char c) =>
        !char.IsControl(c) && !char.IsSurrogate(c) && c != '\uFFFD'
        && char.GetUnicodeCategory(c) is not (System.Globalization.UnicodeCategory.Format or System.Globalization.UnicodeCategory.LineSeparator
            or System.Globalization.UnicodeCategory.ParagraphSeparator or System.Globalization.UnicodeCategory.OtherNotAssigned);
}
