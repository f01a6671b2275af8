using System.Buffers.Binary;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Quantize
{
    /// <summary>
    /// ggml quantize_row_q2_K_ref (what llama-quantize runs without an imatrix), operation for operation so the bytes
    /// are llama-quantize's: per sub-block of 16 a scale and min from <see cref="MakeQkx2Quants"/> (|x|-weighted,
    /// absolute error), both quantized to 4 bits against the largest of each (d = max/15, dmin likewise), then every
    /// element requantized with its block's stored scale and min to 0..3.
    /// </summary>
    private static void Q2_KRef(ReadOnlySpan<float> x, Span<byte> y)
    {
        const float q4scale = 15f;
        Span<byte> L = stackalloc byte[QK_K];
        Span<byte> laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16];
        Span<float> mins = stackalloc float[QK_K / 16];
        Span<float> scales = stackalloc float[QK_K / 16];
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var blk = y.Slice(b * Q2_KBytes, Q2_KBytes);
            var sc = blk.Slice(Q2_K_Scales, QK_K / 16);
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < QK_K / 16; j++)
            {
                var xs = xb.Slice(16 * j, 16);
                for (int l = 0; l < 16; l++) weights[l] = MathF.Abs(xs[l]);
                scales[j] = MakeQkx2Quants(xs, 3, weights, L.Slice(16 * j, 16), out mins[j], laux, -0.5f, 0.1f, 15, useMad: true);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }

            ushort dh = 0, mh = 0;
            sc.Clear();
            if (maxScale > 0)
            {
                float iscale = q4scale / maxScale;
                for (int j = 0; j < QK_K / 16; j++) sc[j] = (byte)NearestInt(iscale * scales[j]);
                dh = FloatToHalf(maxScale / q4scale);
            }
            if (maxMin > 0)
            {
                float iscale = q4scale / maxMin;
                for (int j = 0; j < QK_K / 16; j++) sc[j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
                mh = FloatToHalf(maxMin / q4scale);
            }
            BinaryPrimitives.WriteUInt16LittleEndian(blk.Slice(Q2_K_D), dh);
            BinaryPrimitives.WriteUInt16LittleEndian(blk.Slice(Q2_K_Dmin), mh);

            for (int j = 0; j < QK_K / 16; j++)
            {
                float d = HalfToFloat(dh) * (sc[j] & 0xF);
                if (d == 0) continue; // keeps MakeQkx2Quants' levels, as ggml does
                float dm = HalfToFloat(mh) * (sc[j] >> 4);
                for (int ii = 0; ii < 16; ii++)
                    L[16 * j + ii] = (byte)Math.Clamp(NearestInt((xb[16 * j + ii] + dm) / d), 0, 3);
            }
            PackTwoBits(L, blk.Slice(Q2_K_Qs, QK_K / 4));
        }
    }

    /// <summary>
    /// ggml make_qkx2_quants: x ≈ scale·L − min with L in 0..nmax and min ≤ 0 clamped, starting from the range and
    /// trying nstep + 1 other inverse scales (rmin + rdelta·is + nmax)/(max − min), each refitted by weighted least
    /// squares, keeping the one with the smallest weighted absolute (<paramref name="useMad"/>) or squared error.
    /// Returns the scale; <paramref name="theMin"/> gets −min.
    /// </summary>
    private static float MakeQkx2Quants(ReadOnlySpan<float> x, int nmax, ReadOnlySpan<float> weights, Span<byte> L, out float theMin,
        Span<byte> laux, float rmin, float rdelta, int nstep, bool useMad)
    {
        int n = x.Length;
        float min = x[0], max = x[0];
        float sumW = weights[0], sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            L.Slice(0, n).Clear();
            theMin = -min;
            return 0;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestMad = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Clamp(l, 0, nmax);
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestMad += weights[i] * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
                laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float mad = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    mad += weights[i] * diff;
                }
                if (mad < bestMad)
                {
                    laux.Slice(0, n).CopyTo(L);
                    bestMad = mad;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }
}
