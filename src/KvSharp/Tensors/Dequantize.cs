using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Exact block -> float conversion, element for element what ggml's dequantize_row_* computes (same operation order,
/// no fused multiply-add), so an embedding row we look up equals llama.cpp's get_rows output. The activation formats
/// Q8_1 and Q8_K can be read back too (tests use that).
/// </summary>
public static partial class Dequantize
{
    /// <summary>Dequantizes the first <c>dst.Length</c> elements stored in <paramref name="src"/>.</summary>
    public static void Row(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        int n = dst.Length;
        CheckRow(type, n, src.Length, "Dequantize.Row");
        switch (type)
        {
            case GgmlType.F32: MemoryMarshal.Cast<byte, float>(src[..(n * 4)]).CopyTo(dst); break;
            case GgmlType.F16:
                for (int i = 0; i < n; i++) dst[i] = HalfToFloat(BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(2 * i)));
                break;
            case GgmlType.BF16:
                for (int i = 0; i < n; i++) dst[i] = BF16ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(2 * i)));
                break;
            case GgmlType.Q8_0: Q8_0(src, dst); break;
            case GgmlType.Q4_0: Q4_0(src, dst); break;
            case GgmlType.Q5_0: Q5_0(src, dst); break;
            case GgmlType.Q5_1: Q5_1(src, dst); break;
            case GgmlType.Q8_1: Q8_1(src, dst); break;
            case GgmlType.Q8_K: Q8_K(src, dst); break;
            case GgmlType.Q4_K: Q4_K(src, dst); break;
            case GgmlType.Q5_K: Q5_K(src, dst); break;
            case GgmlType.Q6_K: Q6_K(src, dst); break;
            case GgmlType.Q3_K: Q3_K(src, dst); break;
            case GgmlType.Q2_K: Q2_K(src, dst); break;
            case GgmlType.Q4_1: Q4_1(src, dst); break;
            case GgmlType.IQ4_NL: Iq4Nl(src, dst); break;
            case GgmlType.IQ4_XS: Iq4Xs(src, dst); break;
            case GgmlType.MXFP4: Mxfp4(src, dst); break;
            default: throw new NotSupportedException($"Dequantize.Row: tensor type {type} is not supported");
        }
    }

    private static void Q8_0(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * Q8_0Bytes, Q8_0Bytes);
            float d = F16(blk, 0);
            for (int j = 0; j < QK; j++) y[b * QK + j] = (sbyte)blk[2 + j] * d;
        }
    }

    private static void Q8_1(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * Q8_1Bytes, Q8_1Bytes);
            float d = F16(blk, 0);
            for (int j = 0; j < QK; j++) y[b * QK + j] = (sbyte)blk[4 + j] * d;
        }
    }

    private static void Q4_0(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * Q4_0Bytes, Q4_0Bytes);
            float d = F16(blk, 0);
            for (int j = 0; j < QK / 2; j++)
            {
                y[b * QK + j] = ((blk[2 + j] & 0x0F) - 8) * d;
                y[b * QK + j + QK / 2] = ((blk[2 + j] >> 4) - 8) * d;
            }
        }
    }

    /// <summary>
    /// 16 bytes of 4-bit indices into a level table (IQ4_NL, IQ4_XS, MXFP4) as 32 values d · level: low nibbles are
    /// elements 0..15, high nibbles 16..31.
    /// </summary>
    private static void NibbleLevels(ReadOnlySpan<sbyte> levels, ReadOnlySpan<byte> qs, float d, Span<float> o)
    {
        for (int j = 0; j < 16; j++)
        {
            o[j] = d * levels[qs[j] & 0xF];
            o[j + 16] = d * levels[qs[j] >> 4];
        }
    }

    private static void Q5_0(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * Q5_0Bytes, Q5_0Bytes);
            float d = F16(blk, 0);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(blk.Slice(2));
            for (int j = 0; j < QK / 2; j++)
            {
                int xh0 = (int)((qh >> j) << 4) & 0x10;
                int xh1 = (int)(qh >> (j + 12)) & 0x10;
                y[b * QK + j] = (((blk[6 + j] & 0x0F) | xh0) - 16) * d;
                y[b * QK + j + QK / 2] = (((blk[6 + j] >> 4) | xh1) - 16) * d;
            }
        }
    }

    private static void Q5_1(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * Q5_1Bytes, Q5_1Bytes);
            float d = F16(blk, 0), m = F16(blk, 2);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(blk.Slice(4));
            for (int j = 0; j < QK / 2; j++)
            {
                int xh0 = (int)((qh >> j) << 4) & 0x10;
                int xh1 = (int)(qh >> (j + 12)) & 0x10;
                y[b * QK + j] = ((blk[8 + j] & 0x0F) | xh0) * d + m;
                y[b * QK + j + QK / 2] = ((blk[8 + j] >> 4) | xh1) * d + m;
            }
        }
    }

    private static void Q8_K(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            var blk = src.Slice(b * Q8_KBytes, Q8_KBytes);
            float d = BinaryPrimitives.ReadSingleLittleEndian(blk);
            for (int j = 0; j < QK_K; j++) y[b * QK_K + j] = d * (sbyte)blk[Q8_K_Qs + j];
        }
    }

    private static void Q4_K(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            var blk = src.Slice(b * Q4_KBytes, Q4_KBytes);
            float d = F16(blk, 0), min = F16(blk, 2);
            var scales = blk.Slice(Q4_K_Scales, 12);
            var q = blk.Slice(Q4_K_Qs, 128);
            var o = y.Slice(b * QK_K, QK_K);
            for (int j = 0, s = 0; j < QK_K; j += 64, s += 2)
            {
                ScaleMinK4(s, scales, out int sc, out int m);
                float d1 = d * sc, m1 = min * m;
                ScaleMinK4(s + 1, scales, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                var qq = q.Slice(j / 2, 32);
                for (int l = 0; l < 32; l++) o[j + l] = d1 * (qq[l] & 0xF) - m1;
                for (int l = 0; l < 32; l++) o[j + 32 + l] = d2 * (qq[l] >> 4) - m2;
            }
        }
    }

    private static void Q5_K(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            var blk = src.Slice(b * Q5_KBytes, Q5_KBytes);
            float d = F16(blk, 0), min = F16(blk, 2);
            var scales = blk.Slice(Q5_K_Scales, 12);
            var qh = blk.Slice(Q5_K_Qh, 32);
            var ql = blk.Slice(Q5_K_Qs, 128);
            var o = y.Slice(b * QK_K, QK_K);
            int u1 = 1, u2 = 2;
            for (int j = 0, s = 0; j < QK_K; j += 64, s += 2, u1 <<= 2, u2 <<= 2)
            {
                ScaleMinK4(s, scales, out int sc, out int m);
                float d1 = d * sc, m1 = min * m;
                ScaleMinK4(s + 1, scales, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                var qq = ql.Slice(j / 2, 32);
                for (int l = 0; l < 32; l++) o[j + l] = d1 * ((qq[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - m1;
                for (int l = 0; l < 32; l++) o[j + 32 + l] = d2 * ((qq[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - m2;
            }
        }
    }

    private static void Q6_K(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            var blk = src.Slice(b * Q6_KBytes, Q6_KBytes);
            float d = F16(blk, Q6_K_D);
            var o = y.Slice(b * QK_K, QK_K);
            for (int n = 0; n < 2; n++)
            {
                var ql = blk.Slice(Q6_K_Ql + 64 * n, 64);
                var qh = blk.Slice(Q6_K_Qh + 32 * n, 32);
                var sc = blk.Slice(Q6_K_Scales + 8 * n, 8);
                var oo = o.Slice(128 * n, 128);
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    // ggml evaluates d * sc * q left to right: (d*sc) rounded, then *q.
                    oo[l] = d * (sbyte)sc[s] * q1;
                    oo[l + 32] = d * (sbyte)sc[s + 2] * q2;
                    oo[l + 64] = d * (sbyte)sc[s + 4] * q3;
                    oo[l + 96] = d * (sbyte)sc[s + 6] * q4;
                }
            }
        }
    }
}
