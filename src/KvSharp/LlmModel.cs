using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Gguf;
using KvSharp.Llama2c;
using KvSharp.Models;
using KvSharp.Tensors;
using KvSharp.Tokenization;

namespace KvSharp;

/// <summary>Options for <see cref="LlmModel.Load"/>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Tokenizer file for a llama2.c checkpoint (tokenizer.bin). GGUF files carry their own.</summary>
    public string? TokenizerPath { get; init; }
    /// <summary>Worker threads for the kernels (default: all cores).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>
    /// The longest context sessions will use (default: the trained context length, which sessions default to). It only
    /// matters to a LongRoPE model (Phi-3 128k): past its original context it takes the long rope factors, as llama.cpp
    /// does from its context size; within it the short ones, and then a position past the original context is refused.
    /// </summary>
    public int? ContextLength { get; init; }
}

/// <summary>
/// A loaded model: hyperparameters, memory-mapped weights and tokenizer. Thread-safe to share; each session or
/// engine built on it (KvSharp.Engine) has its own scratch buffers and cache.
/// </summary>
public sealed class LlmModel : IDisposable
{
    private readonly object _evaluateLock = new();
    private ForwardPass? _sharedForward;

    public string Path { get; }
    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }
    public ITokenizer Tokenizer { get; }
    public KernelPool Pool { get; }
    /// <summary>The GGUF file, or null for a llama2.c checkpoint.</summary>
    public GgufFile? Gguf { get; }
    /// <summary>The model's rotary position embedding (what <see cref="KvCache.Shift"/> re-rotates cached keys with).</summary>
    public RotaryEmbedding Rope { get; }

    private LlmModel(string path, ModelConfig config, ModelWeights weights, ITokenizer tokenizer, GgufFile? gguf, int threads)
    {
        Path = path;
        Config = config;
        Weights = weights;
        Tokenizer = tokenizer;
        Gguf = gguf;
        Pool = new KernelPool(Math.Max(1, threads));
        Rope = new RotaryEmbedding(config, weights.RopeFrequencyFactors);
    }

    /// <summary>Loads a GGUF file, or a llama2.c checkpoint (with <see cref="ModelLoadOptions.TokenizerPath"/>).</summary>
    public static LlmModel Load(string path, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        if (options.Threads <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.Threads, "thread count must be positive");
        if (IsGguf(path))
        {
            var gguf = GgufFile.Open(path);
            try
            {
                var config = ModelConfig.FromGguf(gguf);
                var tokenizer = TokenizerFactory.FromGguf(gguf);
                if (tokenizer.VocabSize != config.VocabSize)
                    throw new ModelFormatException($"{path}: the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {config.VocabSize}");
                var weights = GgufModelLoader.Load(gguf, config, options.ContextLength);
                return new LlmModel(path, config, weights, tokenizer, gguf, options.Threads);
            }
            catch
            {
                gguf.Dispose();
                throw;
            }
        }

        if (options.TokenizerPath == null)
        {
            Llama2cCheckpoint.ReadConfig(path); // a file that is no checkpoint either is reported as neither
            throw new ArgumentException($"{path} is not a GGUF file; a llama2.c checkpoint needs its tokenizer.bin (--tokenizer)");
        }
        var (c, w) = Llama2cCheckpoint.Load(path);
        try
        {
            var data = Llama2cTokenizerReader.Read(options.TokenizerPath);
            if (data.Tokens.Length != c.VocabSize)
                throw new ModelFormatException(
                    $"{options.TokenizerPath} holds {data.Tokens.Length} tokens but the checkpoint {path} has a vocabulary of {c.VocabSize}: a tokenizer.bin for another model?");
            var tok = new SentencePieceTokenizer(data);
            return new LlmModel(path, c, w, tok, null, options.Threads);
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    /// <summary>True when the file starts with the GGUF magic (anything else is tried as a llama2.c checkpoint).</summary>
    public static bool IsGguf(string path)
    {
        if (!File.Exists(path)) throw ModelPath.NotAFile(path);
        Span<byte> magic = stackalloc byte[4];
        using var f = File.OpenRead(path);
        return f.Read(magic) == 4 && magic.SequenceEqual("GGUF"u8);
    }

    /// <summary>A new cache for one sequence. <paramref name="contextLength"/> defaults to the trained context length.</summary>
    public KvCache CreateCache(KvCacheMode mode = KvCacheMode.Contiguous, int? contextLength = null,
        KvElementType elementType = KvElementType.F32) =>
        CreateCache(KvCachePolicy.Full, mode, contextLength, elementType); // with Rope: KIVI keys are stored before it

    /// <summary>A new cache for one sequence that keeps the positions <paramref name="policy"/> says (<see cref="KvCachePolicy"/>).</summary>
    public KvCache CreateCache(KvCachePolicy policy, KvCacheMode mode = KvCacheMode.Contiguous, int? contextLength = null,
        KvElementType elementType = KvElementType.F32) =>
        new(Config, mode, contextLength ?? Config.TrainedContextLength, KvElementFormat.Of(elementType), policy, Rope);

    /// <summary>A forward pass with its own scratch buffers, for callers that drive the model themselves.</summary>
    public ForwardPass CreateForwardPass(int maxBatch = 256) => new(Config, Weights, Pool, maxBatch);

    /// <summary>
    /// Low-level call (past_key_values style): runs <paramref name="tokens"/> after what <paramref name="cache"/>
    /// holds, appends their keys and values, and returns logits — [tokens x vocab] when <paramref name="allLogits"/>,
    /// else the last token's. The caller keeps, reuses, truncates or resets the cache as it likes.
    /// </summary>
    public float[] Evaluate(ReadOnlySpan<int> tokens, KvCache cache, bool allLogits = false)
    {
        if (cache.Config != Config) throw new ArgumentException("the cache was created for a different model", nameof(cache));
        var logits = new float[(allLogits ? tokens.Length : 1) * Config.VocabSize];
        lock (_evaluateLock)
        {
            _sharedForward ??= CreateForwardPass();
            _sharedForward.Forward(tokens, cache, logits, allLogits);
        }
        return logits;
    }

    public void Dispose()
    {
        Pool.Dispose();
        Weights.Dispose();
    }
}
