using KvSharp.Gguf;

namespace KvSharp.Tokenization;

/// <summary>
/// Builds the right tokenizer from GGUF metadata (<c>tokenizer.ggml.*</c>), filling absent keys with
/// llama.cpp's defaults and rejecting malformed ones with an <see cref="InvalidDataException"/> that names the key.
/// </summary>
public static class TokenizerFactory
{
    private const string Prefix = "tokenizer.ggml.";

    public static ITokenizer FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Create(ReadData(file.Metadata, file.Path));
    }

    /// <summary>Opens a GGUF file just long enough to read its tokenizer.</summary>
    public static ITokenizer FromGguf(string path)
    {
        using var file = GgufFile.Open(path);
        return FromGguf(file);
    }

    public static ITokenizer FromMetadata(IReadOnlyDictionary<string, GgufValue> metadata, string source = "metadata") =>
        Create(ReadData(metadata, source));

    /// <summary>The tokenizer for already-resolved data (e.g. from <see cref="KvSharp.Llama2c.Llama2cTokenizerReader"/>).</summary>
    public static ITokenizer Create(TokenizerData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return data.Model switch
        {
            "llama" => new SentencePieceTokenizer(data),
            "gpt2" => new BytePairTokenizer(data),
            _ => throw new NotSupportedException($"{data.Source}: tokenizer.ggml.model = '{PrintableText.Of(data.Model)}' is not supported (supported: 'llama' (SentencePiece-style), 'gpt2' (byte-level BPE))"),
        };
    }

    /// <summary>Reads and resolves the tokenizer keys without building a tokenizer.</summary>
    public static TokenizerData ReadData(IReadOnlyDictionary<string, GgufValue> metadata, string source)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var md = new MetadataReader(metadata, source);

        string model = md.String("model") ?? throw new InvalidDataException($"{source}: {Prefix}model is missing");
        if (model is not ("llama" or "gpt2"))
            throw new NotSupportedException($"{source}: {Prefix}model = '{PrintableText.Of(model)}' is not supported (supported: 'llama' (SentencePiece-style), 'gpt2' (byte-level BPE))");
        string? pre = md.String("pre");
        string[] tokens = md.StringArray("tokens") ?? throw new InvalidDataException($"{source}: {Prefix}tokens is missing");
        int n = tokens.Length;
        float[]? scores = md.FloatArray("scores");
        int[]? types = md.IntArray("token_type");
        string[]? merges = md.StringArray("merges");

        // llama.cpp's defaults per vocabulary type (llama_vocab::impl::load).
        bool spm = model == "llama";
        int bos = spm ? 1 : 11, eos = spm ? 2 : 11, unk = spm ? 0 : -1, pad = -1;
        bool addBos = spm || PreTokenizer.ForName(pre).AddBosByDefault;
        bool addEos = false;
        bool addSpacePrefix = spm;

        bos = md.Id("bos_token_id", bos, n);
        eos = md.Id("eos_token_id", eos, n);
        unk = md.Id("unknown_token_id", unk, n);
        pad = md.Id("padding_token_id", pad, n);
        int eot = md.Id("eot_token_id", -1, n);
        int eom = md.Id("eom_token_id", -1, n);
        addBos = md.Bool("add_bos_token") ?? addBos;
        addEos = md.Bool("add_eos_token") ?? addEos;
        addSpacePrefix = md.Bool("add_space_prefix") ?? addSpacePrefix;

        var eog = new List<int>();
        if (eot >= 0) eog.Add(eot);
        if (eom >= 0) eog.Add(eom);

        var data = new TokenizerData(model, pre, tokens, scores, types, merges, bos, eos, unk, pad,
            addBos, addEos, addSpacePrefix, eog.ToArray()) { Source = source };
        data.Validate();
        return data;
    }

    /// <summary>Typed access to tokenizer.ggml.* keys; wrong types are errors naming the key and the type found.</summary>
    private readonly struct MetadataReader(IReadOnlyDictionary<string, GgufValue> metadata, string source)
    {
        private GgufValue? Get(string name) => metadata.TryGetValue(Prefix + name, out var v) ? v : null;

        private InvalidDataException WrongType(string name, GgufValue v, string expected) =>
            new($"{source}: {Prefix}{name} has type {v.Type} ({Describe(v)}), expected {expected}");

        private static string Describe(GgufValue v) => v.Value is GgufArray a ? $"array of {a.ElementType} x {a.Length}" : v.ToString();

        public string? String(string name)
        {
            var v = Get(name);
            if (v is null) return null;
            return v.Value as string ?? throw WrongType(name, v, "a string");
        }

        public bool? Bool(string name)
        {
            var v = Get(name);
            if (v is null) return null;
            if (v.Value is bool b) return b;
            if (v.IsInteger && v.TryGetInt64(out long l) && l is 0 or 1) return l == 1;
            throw WrongType(name, v, "a bool");
        }

        /// <summary>
        /// A token id. 0xFFFFFFFF / -1 means "none": llama.cpp warns "bad special token" and keeps its default,
        /// which is what the stories260K export's padding id relies on. Other ids outside the vocabulary are errors.
        /// </summary>
        public int Id(string name, int fallback, int vocabSize)
        {
            var v = Get(name);
            if (v is null) return fallback < vocabSize ? fallback : -1;
            if (!v.IsInteger || !v.TryGetInt64(out long id)) throw WrongType(name, v, "an integer token id");
            if (id == uint.MaxValue || id == -1) return fallback < vocabSize ? fallback : -1;
            if (id < 0 || id >= vocabSize)
                throw new InvalidDataException($"{source}: {Prefix}{name} = {id} is outside the vocabulary (0..{vocabSize - 1})");
            return (int)id;
        }

        public string[]? StringArray(string name)
        {
            var v = Get(name);
            if (v is null) return null;
            if (v.Value is GgufArray { Items: string[] s }) return s;
            throw WrongType(name, v, "an array of strings");
        }

        public float[]? FloatArray(string name)
        {
            var v = Get(name);
            if (v is null) return null;
            return v.Value switch
            {
                GgufArray { Items: float[] f } => f,
                GgufArray { Items: double[] d } => Array.ConvertAll(d, x => (float)x),
                _ => throw WrongType(name, v, "an array of float32"),
            };
        }

        public int[]? IntArray(string name)
        {
            var v = Get(name);
            if (v is null) return null;
            if (v.Value is not GgufArray a) throw WrongType(name, v, "an array of integers");
            if (a.Items is int[] ints) return ints;
            var result = new int[a.Length];
            for (int i = 0; i < a.Length; i++)
            {
                long l = a.Items.GetValue(i) switch
                {
                    byte b => b, sbyte sb => sb, ushort us => us, short s => s, uint ui => ui, long ll => ll,
                    ulong ul when ul <= long.MaxValue => (long)ul,
                    _ => throw WrongType(name, v, "an array of integers"),
                };
                if (l is < int.MinValue or > int.MaxValue)
                    throw new InvalidDataException($"{source}: {Prefix}{name}[{i}] = {l} is out of range");
                result[i] = (int)l;
            }
            return result;
        }
    }
}
