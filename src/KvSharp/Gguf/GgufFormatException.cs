namespace KvSharp.Gguf;

/// <summary>A GGUF file is malformed. The message names the file, the field and the offending value.</summary>
public sealed class GgufFormatException : FormatException
{
    public GgufFormatException(string message) : base(message) { }
}
