using System.Text;

namespace KvSharp.Synthetic;

/// <summary>
/// A valid SentencePiece-style (tokenizer.ggml.model = "llama") vocabulary of any size: &lt;unk&gt;, &lt;s&gt;,
/// &lt;/s&gt;, the 256 byte tokens &lt;0x00&gt;..&lt;0xFF&gt;, then made-up lower-case pieces ("▁a", "a", "▁b", ...),
/// all distinct, with descending scores.
/// </summary>
public static class SyntheticVocabulary
{
    public const int UnknownId = 0, BosId = 1, EosId = 2, FirstByteId = 3, FirstPieceId = 259;

    // SentencePiece token types as GGUF stores them.
    private const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;

    public static (string[] Tokens, float[] Scores, int[] Types) Create(int size)
    {
        if (size < FirstPieceId + 1)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"a SentencePiece vocabulary needs at least {FirstPieceId + 1} tokens");
        var tokens = new string[size];
        var scores = new float[size];
        var types = new int[size];
        tokens[UnknownId] = "<unk>"; types[UnknownId] = Unknown;
        tokens[BosId] = "<s>"; types[BosId] = Control;
        tokens[EosId] = "</s>"; types[EosId] = Control;
        for (int b = 0; b < 256; b++)
        {
            tokens[FirstByteId + b] = $"<0x{b:X2}>";
            types[FirstByteId + b] = Byte;
        }
        for (int i = FirstPieceId; i < size; i++)
        {
            int k = i - FirstPieceId;
            tokens[i] = (k % 2 == 0 ? "\u2581" : "") + Word(k / 2);
            scores[i] = -k;
            types[i] = Normal;
        }
        return (tokens, scores, types);
    }

    /// <summary>Bijective base-26: 0 → "a", 25 → "z", 26 → "aa", ... (so every index gives a distinct word).</summary>
    private static string Word(int n)
    {
        var sb = new StringBuilder();
        n++;
        while (n > 0)
        {
            n--;
            sb.Insert(0, (char)('a' + n % 26));
            n /= 26;
        }
        return sb.ToString();
    }
}
