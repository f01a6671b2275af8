namespace KvSharp.Tokenization;

/// <summary>
/// GPT-2's reversible byte-to-character map: byte-level BPE vocabularies store every byte as a printable
/// character so that merges never see spaces or control bytes. Printable Latin-1 bytes map to themselves;
/// the other 68 bytes map to U+0100.. in byte order (so ' ' becomes 'Ġ', '\n' becomes 'Ċ').
/// </summary>
public static class Gpt2ByteMap
{
    private static readonly char[] ByteToChar = Build();
    private static readonly Dictionary<char, byte> CharToByte = BuildInverse();

    public static char Encode(byte b) => ByteToChar[b];

    /// <summary>The byte for a mapped character, or false if the character is not one of the 256.</summary>
    public static bool TryDecode(char c, out byte b) => CharToByte.TryGetValue(c, out b);

    private static char[] Build()
    {
        var map = new char[256];
        var direct = new bool[256];
        for (int b = '!'; b <= '~'; b++) direct[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) direct[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) direct[b] = true;
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[b] = direct[b] ? (char)b : (char)(256 + next++);
        return map;
    }

    private static Dictionary<char, byte> BuildInverse()
    {
        var inverse = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++) inverse[ByteToChar[b]] = (byte)b;
        return inverse;
    }
}
