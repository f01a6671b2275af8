using System.Globalization;
using System.Runtime.InteropServices;
using KvSharp.Cache;
using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Models;

/// <summary>
/// Weight types without a shared fixture (Q3_K, Q2_K) against llama.cpp: llama-gqa.F32's matrices quantized with our
/// quantizer (ggml's quantize_row_*_ref, what llama-quantize --pure runs without an imatrix; norms stay F32), the
/// file rebuilt in a temporary directory, and compared with what llama.cpp b4748 (AVX2 build, dump_logits, F32 KV)
/// computed for that file: the last prompt position's 512 logits, and the 32 greedy ids after the prompt with the
/// top-2 margin of each step (from a batch run over the prompt and the first 31 ids), checked in under KQuantParity/.
/// These kernels keep ggml's AVX2 lanes and float order (not the block-sequential order of the interleaved types), so
/// the logits agree to float rounding (Q3_K: 1.2e-6 max, Q2_K: 9.5e-7) and the tolerances are F32's (1e-4 / 1e-5), tight enough
/// that every greedy step is checked.
/// </summary>
public class KQuantParityTests
{
    private static string DataDir => Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "Models", "KQuantParity");

    /// <summary>llama-gqa.F32.gguf with every matrix (2-D tensor) quantized to <paramref name="type"/>, in a temp file.</summary>
    internal static string QuantizedLlamaGqa(GgmlType type)
    {
        using var f32 = GgufFile.Open(TestPaths.Fixture("llama-gqa.F32.gguf"));
        return GgufRewrite.Rewrite("llama-gqa.F32.gguf", tensor: t =>
        {
            var bytes = f32.GetTensorBytes(t);
            if (t.Dimensions.Length != 2) return (t.Type, t.Dimensions, bytes.ToArray());
            var values = MemoryMarshal.Cast<byte, float>(bytes);
            int cols = (int)t.Dimensions[0], rows = (int)t.Dimensions[1], rowBytes = (int)GgmlTypes.RowBytes(type, cols);
            var data = new byte[rows * rowBytes];
            for (int r = 0; r < rows; r++) Quantize.Row(type, values.Slice(r * cols, cols), data.AsSpan(r * rowBytes, rowBytes));
            return (type, t.Dimensions, data);
        });
    }

    /// <summary>SHA-256 of every tensor's name, type and bytes in file order (the metadata differs from llama-quantize's).</summary>
    internal static string TensorsSha256(GgufFile file)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var t in file.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{t.Name}:{t.Type}:"));
            sha.AppendData(file.GetTensorBytes(t));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>
    /// Our quantizer gives llama-quantize's bytes: the hashes are of the tensors of
    /// <c>llama-quantize --pure llama-gqa.F32.gguf OUT Q3_K_S</c> (or <c>Q2_K</c>), b4748's AVX2 build.
    /// </summary>
    [Theory]
    [InlineData("Q3_K", "6882ed6c351c95cdb067d36c48b4b4afc0469b8df6b9310bd6b19428f8683f40")]
    [InlineData("Q2_K", "c3c7cb04e280d5470e73723db6c7b37a14d16d329c2b60f61491b3168dd2a6ad")]
    public void QuantizedTensorsAreLlamaQuantizesBytes(string type, string llamaQuantizeSha256)
    {
        string path = QuantizedLlamaGqa(Enum.Parse<GgmlType>(type));
        try
        {
            using var file = GgufFile.Open(path);
            Assert.Equal(llamaQuantizeSha256, TensorsSha256(file));
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData("Q3_K")]
    [InlineData("Q2_K")]
    public void LogitsAndGreedyIdsMatchLlamaCpp(string type)
    {
        string path = QuantizedLlamaGqa(Enum.Parse<GgmlType>(type));
        try
        {
            var (maxTol, meanTol) = LlamaCppParityTests.Tolerance("F32");
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            int[] prompt = File.ReadAllLines(TestPaths.Fixture("prompt.ids.txt")).Where(l => l.Length > 0).Select(int.Parse).ToArray();
            var cache = model.CreateCache(KvCacheMode.Contiguous, 512, KvElementType.F32);
            float[] logits = model.Evaluate(prompt, cache).ToArray();

            byte[] raw = File.ReadAllBytes(Path.Combine(DataDir, $"llama-gqa.{type}.last.f32"));
            float[] reference = MemoryMarshal.Cast<byte, float>(raw).ToArray();
            LlamaCppParityTests.Compare(reference, logits, model.Config.VocabSize, maxTol, meanTol, $"llama-gqa.{type} (ours) last position");

            var greedy = File.ReadAllLines(Path.Combine(DataDir, $"llama-gqa.{type}.greedy.txt"))
                .Where(l => l.Length > 0).Select(l => l.Split(' ')).Select(p => (Id: int.Parse(p[0]), Margin: float.Parse(p[1], CultureInfo.InvariantCulture))).ToArray();
            Assert.Equal(32, greedy.Length);
            for (int step = 0; step < greedy.Length; step++)
            {
                int ours = KvSharp.Sampling.Sampler.ArgMax(logits);
                if (greedy[step].Margin < 2 * maxTol) return; // llama.cpp itself was nearly tied here
                Assert.True(greedy[step].Id == ours, $"llama-gqa.{type}: greedy step {step}: llama.cpp {greedy[step].Id}, ours {ours}");
                logits = model.Evaluate([ours], cache).ToArray();
            }
        }
        finally { File.Delete(path); }
    }
}
