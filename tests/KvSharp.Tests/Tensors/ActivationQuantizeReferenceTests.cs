using System.Buffers.Binary;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// The vectorized activation quantizers against plain scalar transcriptions of llama.cpp's code
/// (AVX2 quantize_row_q8_0 / q8_1 and quantize_row_q8_K_ref), byte for byte.
/// </summary>
public class ActivationQuantizeReferenceTests
{
    private static byte[] Q8_0OrQ8_1(float[] x, bool q81)
    {
        int bb = q81 ? 36 : 34, off = q81 ? 4 : 2;
        var y = new byte[x.Length / 32 * bb];
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[32 * b + j]));
            float d = amax / 127f, id = amax != 0 ? 127f / amax : 0f;
            int sum = 0;
            for (int j = 0; j < 32; j++)
            {
                int q = (int)MathF.Round(x[32 * b + j] * id, MidpointRounding.ToEven);
                y[b * bb + off + j] = (byte)(sbyte)q;
                sum += q;
            }
            BinaryPrimitives.WriteUInt16LittleEndian(y.AsSpan(b * bb), BitConverter.HalfToUInt16Bits((Half)d));
            if (q81) BinaryPrimitives.WriteUInt16LittleEndian(y.AsSpan(b * bb + 2), BitConverter.HalfToUInt16Bits((Half)(d * sum)));
        }
        return y;
    }

    private static int NearestInt(float f) => (BitConverter.SingleToInt32Bits(f + 12582912f) & 0x007fffff) - 0x00400000;

    private static byte[] Q8_K(float[] x)
    {
        var y = new byte[x.Length / 256 * 292];
        for (int b = 0; b < x.Length / 256; b++)
        {
            var blk = y.AsSpan(b * 292, 292);
            float max = 0, amax = 0;
            for (int j = 0; j < 256; j++)
            {
                float ax = MathF.Abs(x[256 * b + j]);
                if (ax > amax) { amax = ax; max = x[256 * b + j]; }
            }
            if (amax == 0) continue;
            float iscale = -127f / max;
            for (int j = 0; j < 256; j++) blk[4 + j] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * x[256 * b + j]));
            for (int k = 0; k < 16; k++)
            {
                int s = 0;
                for (int i = 0; i < 16; i++) s += (sbyte)blk[4 + 16 * k + i];
                BinaryPrimitives.WriteInt16LittleEndian(blk.Slice(260 + 2 * k), (short)s);
            }
            BinaryPrimitives.WriteSingleLittleEndian(blk, 1 / iscale);
        }
        return y;
    }

    public static IEnumerable<float[]> Inputs()
    {
        for (int seed = 0; seed < 30; seed++)
        {
            float[] x = Gaussian(1024, 500 + seed, seed % 2 == 0 ? 1f : 1e-3f);
            if (seed % 3 == 0)
            {
                // Exact ties after scaling: amax 127 makes id = 1, so k + 0.5 values hit round-half-even.
                for (int i = 0; i < x.Length; i++) x[i] = MathF.Round(x[i] * 40) / 2;
                for (int b = 0; b < x.Length; b += 32) x[b] = 127;
            }
            if (seed % 5 == 0) Array.Clear(x, 256, 256);
            if (seed % 7 == 0) { x[3] = -9; x[9] = 9; } // equal magnitudes, opposite signs: the first wins in Q8_K
            yield return x;
        }
    }

    [Fact]
    public void Q8_0MatchesScalarTranscription()
    {
        foreach (var x in Inputs()) Assert.Equal(Q8_0OrQ8_1(x, false), QuantizeRow(GgmlType.Q8_0, x));
    }

    [Fact]
    public void Q8_1MatchesScalarTranscription()
    {
        foreach (var x in Inputs()) Assert.Equal(Q8_0OrQ8_1(x, true), QuantizeRow(GgmlType.Q8_1, x));
    }

    [Fact]
    public void Q8_KMatchesScalarTranscription()
    {
        foreach (var x in Inputs()) Assert.Equal(Q8_K(x), QuantizeRow(GgmlType.Q8_K, x));
    }
}
