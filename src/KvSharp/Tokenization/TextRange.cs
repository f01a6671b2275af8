namespace KvSharp.Tokenization;

/// <summary>A run of characters in a string: <see cref="Length"/> characters from <see cref="Start"/>.</summary>
public readonly record struct TextRange(int Start, int Length)
{
    public int End => Start + Length;
}
