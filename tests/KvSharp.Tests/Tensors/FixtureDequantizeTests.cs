using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// Cross-check of our block layouts against llama.cpp's: every tensor of every quantized fixture (made by
/// llama-quantize) is dequantized and compared with the same tensor of the F32 file, within that type's
/// quantization error. A wrong nibble order, scale packing or offset gives errors of order 100%, not a few percent.
/// </summary>
public class FixtureDequantizeTests
{
    public static TheoryData<string, string> Files()
    {
        var d = new TheoryData<string, string>();
        foreach (var model in new[] { "llama-gqa", "llama-tied", "qwen2-bias", "stories260K" })
            foreach (var type in new[] { "F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K" })
                if (!(model == "stories260K" && type is "Q8_0" or "Q4_0"))
                    d.Add(model, type);
        return d;
    }

    private static double Bound(GgmlType t) => t switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 1e-3,
        GgmlType.BF16 => 5e-3,
        GgmlType.Q8_0 => 0.01,
        GgmlType.Q6_K => 0.03,
        GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q5_K => 0.06,
        GgmlType.Q4_0 or GgmlType.Q4_K => 0.12,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void EveryTensorMatchesTheF32Model(string model, string fileType)
    {
        string path = TestPaths.Fixture($"{model}.{fileType}.gguf"), f32Path = TestPaths.Fixture($"{model}.F32.gguf");
        Assert.SkipUnless(File.Exists(path) && File.Exists(f32Path), $"fixture {path} not found");
        using var q = GgufFile.Open(path);
        using var f = GgufFile.Open(f32Path);
        var seen = new HashSet<GgmlType>();
        foreach (var t in q.Tensors)
        {
            var reference = f.GetTensor(t.Name);
            Assert.Equal(GgmlType.F32, reference.Type);
            Assert.Equal(reference.Dimensions, t.Dimensions);
            int cols = (int)t.Dimensions[0];
            long rows = t.ElementCount / cols;
            int rowBytes = (int)GgmlTypes.RowBytes(t.Type, cols);
            var qBytes = q.GetTensorBytes(t);
            var fBytes = f.GetTensorBytes(reference);
            var got = new float[cols];
            var want = new float[cols];
            double err = 0, sig = 0;
            for (long r = 0; r < rows; r++)
            {
                Dequantize.Row(t.Type, qBytes.Slice((int)(r * rowBytes), rowBytes), got);
                Dequantize.Row(GgmlType.F32, fBytes.Slice((int)(r * cols * 4), cols * 4), want);
                for (int i = 0; i < cols; i++)
                {
                    err += (got[i] - (double)want[i]) * (got[i] - (double)want[i]);
                    sig += want[i] * (double)want[i];
                }
            }
            double rel = Math.Sqrt(err / sig);
            Assert.True(rel <= Bound(t.Type), $"{model}.{fileType} {t.Name} ({t.Type} {t.ShapeText}): relative RMS error {rel:G4} > {Bound(t.Type)}");
            seen.Add(t.Type);
        }
        // The mixes documented in fixtures/README.md: make sure the odd formats really are exercised.
        if (model == "stories260K" && fileType == "Q4_K_M") Assert.Contains(GgmlType.Q5_0, seen);
        if (model == "stories260K" && fileType == "Q5_K_M") Assert.Contains(GgmlType.Q5_1, seen);
        if (fileType == "Q4_K_M" && model != "stories260K") Assert.Contains(GgmlType.Q4_K, seen);
    }
}
