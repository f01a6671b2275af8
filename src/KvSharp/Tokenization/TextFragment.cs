namespace KvSharp.Tokenization;

/// <summary>A piece of the input after special-token splitting: either a token id or a range of raw text.</summary>
internal readonly record struct TextFragment(int TokenId, int Start, int Length)
{
    public bool IsToken => TokenId >= 0;
    public static TextFragment Text(int start, int length) => new(-1, start, length);
    public static TextFragment Token(int id) => new(id, 0, 0);
}
