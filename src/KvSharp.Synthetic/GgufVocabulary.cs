using System.Security.Cryptography;
using KvSharp.Gguf;

namespace KvSharp.Synthetic;

/// <summary>
/// A real model's vocabulary for a synthetic model: every <c>tokenizer.*</c> key of a GGUF file (tokens, scores, token
/// types, merges, the pre-tokenizer, bos/eos/unk/pad ids, add_bos/add_eos, the chat template), copied as they are, so
/// the random-weight model tokenizes and renders chats exactly as the real one does. A vocab-only file such as
/// llama.cpp's ggml-vocab-llama3.gguf is enough; any GGUF with a tokenizer works.
/// </summary>
public sealed class GgufVocabulary
{
    private const string TokensKey = "tokenizer.ggml.tokens";

    private GgufVocabulary(string path, IReadOnlyList<KeyValuePair<string, GgufValue>> keys, int size, string identity)
    {
        Path = path;
        Keys = keys;
        Size = size;
        Identity = identity;
    }

    public string Path { get; }
    /// <summary>The tokenizer.* metadata, in the file's order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> Keys { get; }
    /// <summary>Tokens in the vocabulary: the synthetic model's vocabulary size.</summary>
    public int Size { get; }
    /// <summary>
    /// Names the vocabulary in cache file names: the file's name and the start of a hash of its bytes, so two files
    /// of one name, or a file that changed, never share a cached model.
    /// </summary>
    public string Identity { get; }

    /// <summary>Reads the tokenizer of <paramref name="path"/>; one clear error when the file has none.</summary>
    public static GgufVocabulary Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"--vocab file not found: {path}", path);
        using var gguf = GgufFile.Open(path);
        var keys = gguf.MetadataKeys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal))
            .Select(k => KeyValuePair.Create(k, gguf.Metadata[k])).ToList();
        var tokens = gguf.GetStringArray(TokensKey)
            ?? throw new ArgumentException($"--vocab {path}: the file has no {TokensKey} array (not a GGUF with a tokenizer)");
        if (gguf.GetStringOrNull("tokenizer.ggml.model") == null)
            throw new ArgumentException($"--vocab {path}: the file has no tokenizer.ggml.model");
        return new GgufVocabulary(path, keys, tokens.Length, IdentityOf(path));
    }

    private static string IdentityOf(string path)
    {
        using var stream = File.OpenRead(path);
        string hash = Convert.ToHexStringLower(SHA256.HashData(stream))[..10];
        string stem = System.IO.Path.GetFileNameWithoutExtension(path);
        var safe = new string(stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());
        return $"{safe}-{hash}";
    }
}
