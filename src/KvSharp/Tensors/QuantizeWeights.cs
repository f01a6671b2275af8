using System.Buffers.Binary;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Reference weight quantizers, used to write synthetic models for tests and benchmarks. Q4_0/Q5_0/Q5_1/Q4_1 follow ggml's
/// quantize_row_*_ref exactly, IQ4_NL/IQ4_XS llama-quantize's search (QuantizeWeights.Iq4.cs), and Q3_K/Q2_K
/// (QuantizeWeights.Q3K.cs, QuantizeWeights.Q2K.cs) are exact ports too: llama-quantize's bytes; MXFP4 ports ggml's
/// quantize_row_mxfp4_ref (QuantizeWeights.Mxfp4.cs). Q4_K/Q5_K/Q6_K use the
/// same block packing as ggml but pick scales and mins directly from each sub-block's range instead of ggml's iterative
/// error search (make_qkx2_quants / make_qx_quants), so their bytes differ from llama-quantize's (the error is somewhat
/// larger) but every block is valid.
/// </summary>
public static partial class Quantize
{
    /// <summary>ggml's GROUP_MAX_EPS: a sub-block whose largest |x| is below it is stored as zeros.</summary>
    private const float GroupMaxEps = 1e-15f;

    private static void Q4_0Ref(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var blk = y.Slice(b * Q4_0Bytes, Q4_0Bytes);
            SignedMax(xb, out float max);
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0;
            BinaryPrimitives.WriteUInt16LittleEndian(blk, FloatToHalf(d));
            for (int j = 0; j < QK / 2; j++)
            {
                int x0 = Math.Min(15, (int)(sbyte)(int)(xb[j] * id + 8.5f));
                int x1 = Math.Min(15, (int)(sbyte)(int)(xb[j + QK / 2] * id + 8.5f));
                blk[2 + j] = (byte)(x0 | (x1 << 4));
            }
        }
    }

    private static void Q5_0Ref(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var blk = y.Slice(b * Q5_0Bytes, Q5_0Bytes);
            SignedMax(xb, out float max);
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0;
            BinaryPrimitives.WriteUInt16LittleEndian(blk, FloatToHalf(d));
            uint qh = 0;
            for (int j = 0; j < QK / 2; j++)
            {
                int x0 = Math.Min(31, (int)(sbyte)(int)(xb[j] * id + 16.5f));
                int x1 = Math.Min(31, (int)(sbyte)(int)(xb[j + QK / 2] * id + 16.5f));
                blk[6 + j] = (byte)((x0 & 0xF) | ((x1 & 0xF) << 4));
                qh |= (uint)((x0 & 0x10) >> 4) << j;
                qh |= (uint)((x1 & 0x10) >> 4) << (j + QK / 2);
            }
            BinaryPrimitives.WriteUInt32LittleEndian(blk.Slice(2), qh);
        }
    }

    private static void Q5_1Ref(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var blk = y.Slice(b * Q5_1Bytes, Q5_1Bytes);
            float id = MinScaleHeader(xb, blk, (1 << 5) - 1, out float min);
            uint qh = 0;
            for (int j = 0; j < QK / 2; j++)
            {
                int x0 = (byte)(int)((xb[j] - min) * id + 0.5f);
                int x1 = (byte)(int)((xb[j + QK / 2] - min) * id + 0.5f);
                blk[8 + j] = (byte)((x0 & 0xF) | ((x1 & 0xF) << 4));
                qh |= (uint)((x0 & 0x10) >> 4) << j;
                qh |= (uint)((x1 & 0x10) >> 4) << (j + QK / 2);
            }
            BinaryPrimitives.WriteUInt32LittleEndian(blk.Slice(4), qh);
        }
    }

    /// <summary>
    /// The header of a Q4_1/Q5_1 block as ggml writes it: d = (max - min) / <paramref name="levels"/> and m = min as
    /// halves at bytes 0 and 2. Returns 1/d (0 for a constant block), the factor the quants are computed with.
    /// </summary>
    private static float MinScaleHeader(ReadOnlySpan<float> xb, Span<byte> blk, int levels, out float min)
    {
        float max = -float.MaxValue;
        min = float.MaxValue;
        foreach (float v in xb) { if (v < min) min = v; if (v > max) max = v; }
        float d = (max - min) / levels;
        BinaryPrimitives.WriteUInt16LittleEndian(blk, FloatToHalf(d));
        BinaryPrimitives.WriteUInt16LittleEndian(blk.Slice(2), FloatToHalf(min));
        return d != 0 ? 1.0f / d : 0;
    }

    /// <summary>The element of largest magnitude, with its sign (first one wins ties), as ggml's legacy quantizers pick it.</summary>
    private static void SignedMax(ReadOnlySpan<float> x, out float max)
    {
        float amax = 0;
        max = 0;
        foreach (float v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
    }

    private static void Q4_KRef(ReadOnlySpan<float> x, Span<byte> y) => QxKRef(x, y, 15, Q4_KBytes);

    private static void Q5_KRef(ReadOnlySpan<float> x, Span<byte> y) => QxKRef(x, y, 31, Q5_KBytes);

    /// <summary>Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32 with x ≈ d*sc*q - dmin*m, q in 0..nmax.</summary>
    private static void QxKRef(ReadOnlySpan<float> x, Span<byte> y, int nmax, int blockBytes)
    {
        Span<float> scales = stackalloc float[8];
        Span<float> mins = stackalloc float[8];
        Span<byte> L = stackalloc byte[QK_K];
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var blk = y.Slice(b * blockBytes, blockBytes);
            blk.Clear();
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; j++)
            {
                // The min is clamped to <= 0 (stored negated) as in ggml, so a sub-block of positive values keeps 0 exact.
                float lo = 0, hi = float.MinValue;
                foreach (float v in xb.Slice(32 * j, 32)) { lo = MathF.Min(lo, v); hi = MathF.Max(hi, v); }
                scales[j] = (hi - lo) / nmax;
                mins[j] = -lo;
                maxScale = MathF.Max(maxScale, scales[j]);
                maxMin = MathF.Max(maxMin, mins[j]);
            }
            float invScale = maxScale > 0 ? 63f / maxScale : 0;
            float invMin = maxMin > 0 ? 63f / maxMin : 0;
            var sc = blk.Slice(Q4_K_Scales, 12);
            for (int j = 0; j < 8; j++)
            {
                int ls = Math.Min(63, NearestInt(invScale * scales[j]));
                int lm = Math.Min(63, NearestInt(invMin * mins[j]));
                if (j < 4)
                {
                    sc[j] = (byte)ls;
                    sc[j + 4] = (byte)lm;
                }
                else
                {
                    sc[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                    sc[j - 4] |= (byte)((ls >> 4) << 6);
                    sc[j] |= (byte)((lm >> 4) << 6);
                }
            }
            ushort dh = FloatToHalf(maxScale / 63f), dminh = FloatToHalf(maxMin / 63f);
            BinaryPrimitives.WriteUInt16LittleEndian(blk, dh);
            BinaryPrimitives.WriteUInt16LittleEndian(blk.Slice(2), dminh);
            float d = HalfToFloat(dh), dmin = HalfToFloat(dminh);
            // Re-quantize against the scales as they will be decoded.
            for (int j = 0; j < 8; j++)
            {
                ScaleMinK4(j, sc, out int s, out int m);
                float dj = d * s;
                if (dj == 0) { L.Slice(32 * j, 32).Clear(); continue; }
                float dm = dmin * m;
                for (int i = 0; i < 32; i++)
                    L[32 * j + i] = (byte)Math.Clamp(NearestInt((xb[32 * j + i] + dm) / dj), 0, nmax);
            }
            if (nmax == 15)
            {
                var q = blk.Slice(Q4_K_Qs, 128);
                for (int j = 0; j < QK_K; j += 64)
                    for (int l = 0; l < 32; l++)
                        q[j / 2 + l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
            }
            else
            {
                var qh = blk.Slice(Q5_K_Qh, 32);
                var ql = blk.Slice(Q5_K_Qs, 128);
                int m1 = 1, m2 = 2;
                for (int n = 0; n < QK_K; n += 64, m1 <<= 2, m2 <<= 2)
                {
                    for (int j = 0; j < 32; j++)
                    {
                        int l1 = L[n + j];
                        if (l1 > 15) { l1 -= 16; qh[j] |= (byte)m1; }
                        int l2 = L[n + j + 32];
                        if (l2 > 15) { l2 -= 16; qh[j] |= (byte)m2; }
                        ql[n / 2 + j] = (byte)(l1 | (l2 << 4));
                    }
                }
            }
        }
    }

    /// <summary>Q6_K: 16 sub-blocks of 16 with x ≈ d*sc*(q-32), sc a signed 8-bit scale, q in 0..63.</summary>
    private static void Q6_KRef(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<float> scales = stackalloc float[16];
        Span<byte> L = stackalloc byte[QK_K];
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var blk = y.Slice(b * Q6_KBytes, Q6_KBytes);
            blk.Clear();
            float maxScale = 0, maxAbsScale = 0;
            for (int j = 0; j < 16; j++)
            {
                SignedMax(xb.Slice(16 * j, 16), out float max);
                scales[j] = max / -32; // the largest magnitude maps to q-32 = -32, the end of the range with room
                if (MathF.Abs(scales[j]) > maxAbsScale) { maxAbsScale = MathF.Abs(scales[j]); maxScale = scales[j]; }
            }
            var sc = blk.Slice(Q6_K_Scales, 16);
            ushort dh;
            if (maxAbsScale == 0)
            {
                dh = 0;
            }
            else
            {
                float iscale = -128f / maxScale;
                for (int j = 0; j < 16; j++) sc[j] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * scales[j]));
                dh = FloatToHalf(1 / iscale);
            }
            BinaryPrimitives.WriteUInt16LittleEndian(blk.Slice(Q6_K_D), dh);
            float d = HalfToFloat(dh);
            for (int j = 0; j < 16; j++)
            {
                float dj = d * (sbyte)sc[j];
                if (dj == 0) { L.Slice(16 * j, 16).Fill(32); continue; }
                for (int i = 0; i < 16; i++)
                    L[16 * j + i] = (byte)(Math.Clamp(NearestInt(xb[16 * j + i] / dj), -32, 31) + 32);
            }
            var ql = blk.Slice(Q6_K_Ql, 128);
            var qh = blk.Slice(Q6_K_Qh, 64);
            for (int j = 0; j < QK_K; j += 128)
            {
                for (int l = 0; l < 32; l++)
                {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[j / 2 + l] = (byte)(q1 | (q3 << 4));
                    ql[j / 2 + l + 32] = (byte)(q2 | (q4 << 4));
                    qh[j / 4 + l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                }
            }
        }
    }
}
