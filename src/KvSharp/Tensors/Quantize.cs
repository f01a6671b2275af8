using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// float -> block conversion. Activation formats (Q8_0, Q8_1, Q8_K, F16, BF16, F32) reproduce what llama.cpp's CPU
/// backend (b4748, AVX2) does to a matmul's input row, bit for bit; the weight formats (Q4_0, Q5_0, Q5_1, Q4_K, Q5_K,
/// Q6_K) are simple reference quantizers for writing synthetic models (see QuantizeWeights.cs).
/// </summary>
public static partial class Quantize
{
    /// <summary>Quantizes <paramref name="src"/> (a whole number of blocks) into <paramref name="dst"/>.</summary>
    public static void Row(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        CheckRow(type, src.Length, dst.Length, "Quantize.Row");
        switch (type)
        {
            case GgmlType.F32: src.CopyTo(MemoryMarshal.Cast<byte, float>(dst)); break;
            case GgmlType.F16:
                for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(2 * i), FloatToHalf(src[i]));
                break;
            case GgmlType.BF16:
                for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(2 * i), FloatToBF16(src[i]));
                break;
            case GgmlType.Q8_0: Q8_0(src, dst); break;
            case GgmlType.Q8_1: Q8_1(src, dst); break;
            case GgmlType.Q8_K: Q8_K(src, dst); break;
            case GgmlType.Q4_0: Q4_0Ref(src, dst); break;
            case GgmlType.Q5_0: Q5_0Ref(src, dst); break;
            case GgmlType.Q5_1: Q5_1Ref(src, dst); break;
            case GgmlType.Q4_K: Q4_KRef(src, dst); break;
            case GgmlType.Q5_K: Q5_KRef(src, dst); break;
            case GgmlType.Q6_K: Q6_KRef(src, dst); break;
            default: throw new NotSupportedException($"Quantize.Row: tensor type {type} is not supported");
        }
    }

    private static void Q8_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            Q8Block(x.Slice(b * QK, QK), y.Slice(b * Q8_0Bytes + 2, QK), out float d, out _);
            BinaryPrimitives.WriteUInt16LittleEndian(y.Slice(b * Q8_0Bytes), FloatToHalf(d));
        }
    }

    private static void Q8_1(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            Q8Block(x.Slice(b * QK, QK), y.Slice(b * Q8_1Bytes + 4, QK), out float d, out int sum);
            BinaryPrimitives.WriteUInt16LittleEndian(y.Slice(b * Q8_1Bytes), FloatToHalf(d));
            BinaryPrimitives.WriteUInt16LittleEndian(y.Slice(b * Q8_1Bytes + 2), FloatToHalf(d * sum));
        }
    }

    /// <summary>
    /// One block as llama.cpp's AVX2 quantize_row_q8_0/q8_1 does it: d = amax/127 (stored as f16 by the caller), but the
    /// values are scaled by id = 127/amax, not 1/f16(d), and rounded to nearest even (_mm256_round_ps). Also returns
    /// the integer sum of the quants (Q8_1 stores d*sum).
    /// </summary>
    private static void Q8Block(ReadOnlySpan<float> x, Span<byte> qs, out float d, out int sum)
    {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        d = amax / 127f;
        float id = amax != 0f ? 127f / amax : 0f;
        sum = 0;
        for (int j = 0; j < QK; j++)
        {
            int q = (int)MathF.Round(x[j] * id, MidpointRounding.ToEven);
            qs[j] = (byte)(sbyte)q;
            sum += q;
        }
    }

    /// <summary>
    /// ggml quantize_row_q8_K (= _ref on x86 in b4748): keeps the sign of the element with the largest magnitude,
    /// iscale = -127/max, q = nearest_int(iscale*x) capped at 127, d = 1/iscale as f32, bsums[k] = sum of 16 quants.
    /// </summary>
    private static void Q8_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var blk = y.Slice(b * Q8_KBytes, Q8_KBytes);
            float max = 0, amax = 0;
            for (int j = 0; j < QK_K; j++)
            {
                float ax = MathF.Abs(xb[j]);
                if (ax > amax) { amax = ax; max = xb[j]; }
            }
            if (amax == 0f)
            {
                blk.Clear();
                continue;
            }
            float iscale = -127f / max;
            for (int j = 0; j < QK_K; j++)
                blk[Q8_K_Qs + j] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * xb[j]));
            for (int k = 0; k < QK_K / 16; k++)
            {
                int s = 0;
                for (int i = 0; i < 16; i++) s += (sbyte)blk[Q8_K_Qs + 16 * k + i];
                BinaryPrimitives.WriteInt16LittleEndian(blk.Slice(Q8_K_Bsums + 2 * k), (short)s);
            }
            BinaryPrimitives.WriteSingleLittleEndian(blk, 1 / iscale);
        }
    }
}
