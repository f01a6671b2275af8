namespace KvSharp.Tokenization;

/// <summary>
/// Everything a tokenizer needs, as plain data, with the defaults already resolved (see
/// <see cref="TokenizerFactory"/>, which fills it from GGUF metadata, and
/// <see cref="KvSharp.Llama2c.Llama2cTokenizerReader"/>). Ids that do not exist are -1.
/// </summary>
/// <param name="Model"><c>tokenizer.ggml.model</c>: "llama" (SentencePiece-style) or "gpt2" (byte-level BPE).</param>
/// <param name="Pre"><c>tokenizer.ggml.pre</c>: the pre-tokenizer name for "gpt2" models (null = llama.cpp's default set).</param>
/// <param name="Tokens">Token texts as stored in the vocabulary (SPM: spaces as "▁"; BPE: gpt-2 byte-mapped).</param>
/// <param name="Scores">SPM merge scores, one per token (null = all 0).</param>
/// <param name="TokenTypes">One <see cref="TokenType"/> value per token (null = all normal).</param>
/// <param name="Merges">BPE merges "left right", best first (required for "gpt2").</param>
/// <param name="EogIds">Extra end-of-generation ids (eot, eom, ...); eos is always one.</param>
public sealed record TokenizerData(
    string Model,
    string? Pre,
    string[] Tokens,
    float[]? Scores,
    int[]? TokenTypes,
    string[]? Merges,
    int BosId,
    int EosId,
    int UnkId,
    int PadId,
    bool AddBos,
    bool AddEos,
    bool AddSpacePrefix,
    int[] EogIds)
{
    /// <summary>Where the data came from, for error messages (a file path or "metadata").</summary>
    public string Source { get; init; } = "tokenizer data";

    /// <summary>
    /// Checks counts and ids; throws <see cref="InvalidDataException"/> naming the field and the value that is wrong,
    /// or <see cref="NotSupportedException"/> for a tokenizer model we do not implement.
    /// </summary>
    public void Validate()
    {
        if (Model is not ("llama" or "gpt2"))
            throw new NotSupportedException($"{Source}: tokenizer.ggml.model = '{Model}' is not supported (supported: 'llama' (SentencePiece-style), 'gpt2' (byte-level BPE))");
        if (Tokens is null || Tokens.Length == 0)
            throw new InvalidDataException($"{Source}: tokenizer.ggml.tokens is missing or empty");
        int n = Tokens.Length;
        for (int i = 0; i < n; i++)
            if (Tokens[i] is null) throw new InvalidDataException($"{Source}: tokenizer.ggml.tokens[{i}] is null");
        if (Scores is not null && Scores.Length != n)
            throw new InvalidDataException($"{Source}: tokenizer.ggml.scores has {Scores.Length} entries but tokenizer.ggml.tokens has {n}");
        if (TokenTypes is not null)
        {
            if (TokenTypes.Length != n)
                throw new InvalidDataException($"{Source}: tokenizer.ggml.token_type has {TokenTypes.Length} entries but tokenizer.ggml.tokens has {n}");
            for (int i = 0; i < n; i++)
                if ((uint)TokenTypes[i] > (uint)TokenType.Byte)
                    throw new InvalidDataException($"{Source}: tokenizer.ggml.token_type[{i}] = {TokenTypes[i]} is not a known token type (0..6)");
        }
        if (Model == "gpt2" && Merges is null)
            throw new InvalidDataException($"{Source}: tokenizer.ggml.merges is required for tokenizer.ggml.model = 'gpt2'");
        CheckId(BosId, "tokenizer.ggml.bos_token_id", n);
        CheckId(EosId, "tokenizer.ggml.eos_token_id", n);
        CheckId(UnkId, "tokenizer.ggml.unknown_token_id", n);
        CheckId(PadId, "tokenizer.ggml.padding_token_id", n);
        foreach (int id in EogIds ?? throw new InvalidDataException($"{Source}: EogIds is null"))
            CheckId(id, "end-of-generation id (eot/eom)", n);
        if (AddBos && BosId < 0)
            throw new InvalidDataException($"{Source}: tokenizer.ggml.add_bos_token is true but there is no tokenizer.ggml.bos_token_id");
        if (AddEos && EosId < 0)
            throw new InvalidDataException($"{Source}: tokenizer.ggml.add_eos_token is true but there is no tokenizer.ggml.eos_token_id");
    }

    private void CheckId(int id, string key, int n)
    {
        if (id < -1 || id >= n)
            throw new InvalidDataException($"{Source}: {key} = {id} is outside the vocabulary (0..{n - 1})");
    }
}
