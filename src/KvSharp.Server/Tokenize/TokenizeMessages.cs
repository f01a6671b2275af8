namespace KvSharp.Server.Tokenize;

/// <summary>llama-server's <c>POST /tokenize</c> body.</summary>
public sealed class TokenizeRequest
{
    public string? Content { get; set; }
    /// <summary>Add BOS (and EOS) as the model's metadata says; default false, as llama-server.</summary>
    public bool? AddSpecial { get; set; }
    /// <summary>Special-token text in the content becomes the token; default true, as llama-server.</summary>
    public bool? ParseSpecial { get; set; }
    /// <summary>Return each token's piece with its id.</summary>
    public bool? WithPieces { get; set; }
}

public sealed record TokenizeResponse(int[] Tokens);

/// <summary>With pieces: each token's text, or its bytes when they are not whole UTF-8 characters (as llama-server).</summary>
public sealed record TokenizeWithPiecesResponse(TokenPiece[] Tokens);

/// <summary><see cref="Piece"/> is a string, or an int[] of bytes.</summary>
public sealed record TokenPiece(int Id, object Piece);

public sealed class DetokenizeRequest
{
    public int[]? Tokens { get; set; }
}

public sealed record DetokenizeResponse(string Content);
