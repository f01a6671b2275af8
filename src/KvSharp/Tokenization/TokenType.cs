namespace KvSharp.Tokenization;

/// <summary>
/// Token kinds as stored in GGUF's <c>tokenizer.ggml.token_type</c> (the values are SentencePiece's, which
/// llama.cpp reuses). They decide how a token decodes and whether its text is matched as a special token.
/// </summary>
public enum TokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}
