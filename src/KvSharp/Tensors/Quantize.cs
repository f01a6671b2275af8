using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// float -> block conversion. Activation formats (Q8_0, Q8_1, Q8_K, F16, BF16, F32) reproduce what llama.cpp's CPU
/// backend (b4748, AVX2) does to a matmul's input row, bit for bit; the weight formats (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
/// Q6_K, IQ4_NL, IQ4_XS, MXFP4) are simple reference quantizers for writing synthetic models (see QuantizeWeights.cs).
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
            case GgmlType.F16: HalfConvert.ToHalf(src, MemoryMarshal.Cast<byte, ushort>(dst)); break;
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
            case GgmlType.Q3_K: Q3_KRef(src, dst); break;
            case GgmlType.Q2_K: Q2_KRef(src, dst); break;
            case GgmlType.Q4_1: Q4_1Ref(src, dst); break;
            case GgmlType.IQ4_NL: Iq4NlRef(src, dst); break;
            case GgmlType.IQ4_XS: Iq4XsRef(src, dst); break;
            case GgmlType.MXFP4: Mxfp4Ref(src, dst); break;
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
    /// the integer sum of the quants (Q8_1 stores d*sum). Written with the portable Vector256 API: every step is an
    /// exactly specified IEEE operation, so it gives the same bytes with or without AVX2.
    /// </summary>
    private static void Q8Block(ReadOnlySpan<float> x, Span<byte> qs, out float d, out int sum)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        Vector256<float> v0 = Vector256.LoadUnsafe(ref p), v1 = Vector256.LoadUnsafe(ref p, 8);
        Vector256<float> v2 = Vector256.LoadUnsafe(ref p, 16), v3 = Vector256.LoadUnsafe(ref p, 24);
        Vector256<float> m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        float amax = HorizontalMax(m);
        d = amax / 127f;
        var id = Vector256.Create(amax != 0f ? 127f / amax : 0f);
        Vector256<int> q0 = Vector256.ConvertToInt32(Vector256.Round(v0 * id)), q1 = Vector256.ConvertToInt32(Vector256.Round(v1 * id));
        Vector256<int> q2 = Vector256.ConvertToInt32(Vector256.Round(v2 * id)), q3 = Vector256.ConvertToInt32(Vector256.Round(v3 * id));
        sum = Vector256.Sum(q0 + q1 + q2 + q3);
        Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).StoreUnsafe(ref Unsafe.As<byte, sbyte>(ref MemoryMarshal.GetReference(qs)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector256<float> m)
    {
        Vector128<float> h = Vector128.Max(m.GetLower(), m.GetUpper());
        h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(2, 3, 0, 1)));
        return MathF.Max(h.GetElement(0), h.GetElement(1));
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
            ref float p = ref MemoryMarshal.GetReference(xb);
            Vector256<float> m = Vector256<float>.Zero;
            for (int j = 0; j < QK_K; j += 8) m = Vector256.Max(m, Vector256.Abs(Vector256.LoadUnsafe(ref p, (nuint)j)));
            float amax = HorizontalMax(m);
            if (amax == 0f || !float.IsFinite(amax))
            {
                // A NaN or infinite input (damaged weights upstream) has no scale: the block's scale becomes NaN, so
                // every dot product with it is NaN too and the forward pass reports it rather than index past the block.
                blk.Clear();
                if (amax != 0f) BinaryPrimitives.WriteSingleLittleEndian(blk, float.NaN);
                continue;
            }
            // ggml keeps the first element of largest magnitude, with its sign (bounded: a NaN the max skipped never matches).
            int at = 0;
            while (at < QK_K - 1 && MathF.Abs(xb[at]) != amax) at++;
            float iscale = -127f / xb[at];
            var vs = Vector256.Create(iscale);
            var cap = Vector256.Create(127);
            ref sbyte qs = ref Unsafe.As<byte, sbyte>(ref blk[Q8_K_Qs]);
            var bsums = MemoryMarshal.Cast<byte, short>(blk.Slice(Q8_K_Bsums, 32));
            for (int j = 0; j < QK_K; j += 32)
            {
                // nearest_int (round half to even) then MIN(127, v), as quantize_row_q8_K_ref.
                Vector256<int> q0 = Vector256.Min(cap, Vector256.ConvertToInt32(Vector256.Round(Vector256.LoadUnsafe(ref p, (nuint)j) * vs)));
                Vector256<int> q1 = Vector256.Min(cap, Vector256.ConvertToInt32(Vector256.Round(Vector256.LoadUnsafe(ref p, (nuint)j + 8) * vs)));
                Vector256<int> q2 = Vector256.Min(cap, Vector256.ConvertToInt32(Vector256.Round(Vector256.LoadUnsafe(ref p, (nuint)j + 16) * vs)));
                Vector256<int> q3 = Vector256.Min(cap, Vector256.ConvertToInt32(Vector256.Round(Vector256.LoadUnsafe(ref p, (nuint)j + 24) * vs)));
                Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).StoreUnsafe(ref qs, (nuint)j);
                bsums[j / 16] = (short)Vector256.Sum(q0 + q1);
                bsums[j / 16 + 1] = (short)Vector256.Sum(q2 + q3);
            }
            BinaryPrimitives.WriteSingleLittleEndian(blk, 1 / iscale);
        }
    }
}
