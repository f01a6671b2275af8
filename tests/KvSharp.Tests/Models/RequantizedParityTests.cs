using System.Runtime.InteropServices;
using KvSharp.Cache;
using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Models;

/// <summary>
/// llama.cpp parity for weight types no shared fixture has (Q3_K, Q2_K, IQ4_NL, IQ4_XS, Q4_1): llama-gqa.F32 with every
/// matrix (token_embd and output included, norms kept F32) quantized by our <see cref="Quantize.Row"/>, as
/// llama-quantize --pure does. The test rebuilds that file and compares with llama.cpp b4748's (AVX2 build) logits for
/// it, checked in under Models/Requantized: <c>dump_logits FILE prompt.ids.txt OUT f32 32</c> (F32 KV cache, the prompt
/// in one batch), of which we keep the last prompt position's 512 logits (<c>.last.f32</c>) and the 32 greedy ids
/// (<c>.greedy.txt</c>).
/// </summary>
/// <remarks>
/// Where our kernels keep ggml's vec_dot lanes and float order (Q3_K, Q2_K, IQ4_XS) the last position agrees to float
/// rounding (at most 1.2e-6), and IQ4_NL, which sums each block exactly and adds it with one FMA as Q4_0 does, to
/// 4.8e-7 (llama.cpp's prompt products, llamafile's tinyBLAS, are closer to that order than to its own vec_dot's); so
/// the tolerances are F32's (1e-4 max, 1e-5 mean); Q4_1 is the quantized
/// weights' (0.3 / 0.03: one activation lands on a neighbouring 8-bit level at position 27 and stays in the cache). The
/// greedy ids must agree until our own top-2 margin falls below twice the max tolerance.
/// </remarks>
public class RequantizedParityTests
{
    /// <summary>Each type, and the <see cref="LlamaCppParityTests.Tolerance"/> class it is held to.</summary>
    public static TheoryData<GgmlType, string> Types() => new()
    {
        { GgmlType.Q3_K, "F32" }, { GgmlType.Q2_K, "F32" }, { GgmlType.IQ4_NL, "F32" }, { GgmlType.IQ4_XS, "F32" },
        { GgmlType.Q4_1, "Q4_1" },
    };

    internal static string DataPath(GgmlType type, string suffix) =>
        Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "Models", "Requantized", $"llama-gqa.{type}.{suffix}");

    /// <summary>Writes llama-gqa.F32 with its matrices quantized to <paramref name="type"/> to <paramref name="path"/>.</summary>
    internal static void Write(GgmlType type, string path)
    {
        using var g = GgufFile.Open(TestPaths.Fixture("llama-gqa.F32.gguf"));
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
            if (key != "general.alignment") w.Add(key, g.Metadata[key]);
        foreach (var t in g.Tensors)
        {
            if (t.Dimensions.Length == 2) w.AddTensor(t.Name, type, t.Dimensions, QuantizeMatrix(g, t, type));
            else w.AddTensor(t.Name, t.Type, t.Dimensions, g.GetTensorBytes(t).ToArray());
        }
        w.Write(path);
    }

    private static byte[] QuantizeMatrix(GgufFile g, GgufTensorInfo t, GgmlType type)
    {
        int cols = (int)t.Dimensions[0], rows = (int)t.Dimensions[1];
        var x = MemoryMarshal.Cast<byte, float>(g.GetTensorBytes(t));
        int rowBytes = (int)GgmlTypes.RowBytes(type, cols);
        var q = new byte[rowBytes * rows];
        for (int r = 0; r < rows; r++) Quantize.Row(type, x.Slice(r * cols, cols), q.AsSpan(r * rowBytes, rowBytes));
        return q;
    }

    /// <summary>
    /// SHA-256 of the matrices (in the F32 fixture's tensor order) that llama-quantize --pure (b4748) wrote for
    /// llama-gqa.F32 (Q3_K as its Q3_K_S): our quantizer must reproduce them byte for byte.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q3_K, "3392c68f64133474ac74bb434c01f77a9da3619294ba729f490424535258348a")]
    [InlineData(GgmlType.Q2_K, "b6af5cc444f82d5db4de7c7b055809f976fb2fa85b79fe0b66ee65c69a6db2ca")]
    [InlineData(GgmlType.IQ4_NL, "10c22367fcc08e274f479a9bb0eb870e2025ef5ea7ebe7aed5a47efdd40a02f0")]
    [InlineData(GgmlType.IQ4_XS, "9d4ee1534f7e6380a006a5e1eed3c6fc0b366c6e08c1ab67ff89211bb916a6b5")]
    [InlineData(GgmlType.Q4_1, "10ec396e2ea45698e4a5e7f3a72af3e8eed20b7fe4d18dfa5fa9cffe377c4add")]
    public void QuantizedMatricesAreLlamaQuantizesBytes(GgmlType type, string sha256)
    {
        using var g = GgufFile.Open(TestPaths.Fixture("llama-gqa.F32.gguf"));
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var t in g.Tensors)
            if (t.Dimensions.Length == 2) hash.AppendData(QuantizeMatrix(g, t, type));
        Assert.Equal(sha256, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void LastPromptLogitsAndGreedyTokensMatchLlamaCpp(GgmlType type, string tolerance)
    {
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-test-{Guid.NewGuid():N}.gguf");
        try
        {
            Write(type, path);
            var (maxTol, meanTol) = LlamaCppParityTests.Tolerance(tolerance);
            float[] reference = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(DataPath(type, "last.f32"))).ToArray();
            int[] greedy = File.ReadAllLines(DataPath(type, "greedy.txt")).Select(int.Parse).ToArray();

            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            var cache = model.CreateCache(KvCacheMode.Contiguous, 512, KvElementType.F32);
            float[] logits = model.Evaluate(Fixtures.Get("llama-gqa", "F32").PromptIds, cache).ToArray();
            LlamaCppParityTests.Compare(reference, logits, model.Config.VocabSize, maxTol, meanTol, $"llama-gqa.{type} F32 KV last position");

            for (int step = 0; step < greedy.Length; step++)
            {
                int ours = KvSharp.Sampling.Sampler.ArgMax(logits);
                if (TopTwoMargin(logits) < 2 * maxTol) return;
                Assert.True(greedy[step] == ours, $"llama-gqa.{type}: greedy step {step}: llama.cpp {greedy[step]}, ours {ours}");
                logits = model.Evaluate([ours], cache).ToArray();
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static float TopTwoMargin(ReadOnlySpan<float> logits)
    {
        float first = float.NegativeInfinity, second = float.NegativeInfinity;
        foreach (float v in logits)
        {
            if (v > first) { second = first; first = v; }
            else if (v > second) second = v;
        }
        return first - second;
    }
}
