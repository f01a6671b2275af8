using System.Buffers.Binary;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// The non-linear 4-bit quantizers, ported from ggml's quantize_row_iq4_nl_impl as llama-quantize runs it without an
/// imatrix (quantize_iq4_nl / quantize_iq4_xs: weights x², 7 scale tries either side of the first guess). Every float
/// operation is the C code's, in its order and without fused multiply-adds (ggml-base is compiled without FMA), so
/// the bytes are llama-quantize's.
/// </summary>
public static partial class Quantize
{
    private const int Iq4Tries = 7;

    private static void Iq4NlRef(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<float> scales = stackalloc float[1];
        Span<float> weight = stackalloc float[QK];
        Span<byte> L = stackalloc byte[QK];
        for (int b = 0; b < x.Length / QK; b++)
            Iq4Block(x.Slice(b * QK, QK), y.Slice(b * IQ4_NLBytes, IQ4_NLBytes), qsOffset: 2, scales, weight, L);
    }

    private static void Iq4XsRef(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<float> scales = stackalloc float[QK_K / 32];
        Span<float> weight = stackalloc float[32];
        Span<byte> L = stackalloc byte[QK_K];
        for (int b = 0; b < x.Length / QK_K; b++)
            Iq4Block(x.Slice(b * QK_K, QK_K), y.Slice(b * IQ4_XSBytes, IQ4_XSBytes), IQ4_XS_Qs, scales, weight, L);
    }

    /// <summary>
    /// One block of <c>x.Length</c> elements (32 for IQ4_NL, 256 for IQ4_XS) in sub-blocks of 32: per sub-block the
    /// scale that maximises (Σ w·q·x)² / Σ w·q² over 15 candidates, then for IQ4_XS the sub-block scales as 6-bit
    /// multiples of one f16 (stored offset by 32: 4 low bits in scales_l, 2 high bits in the u16 scales_h). <paramref name="L"/> holds the chosen level indices, <paramref name="weight"/> one
    /// sub-block's weights.
    /// </summary>
    private static void Iq4Block(ReadOnlySpan<float> x, Span<byte> blk, int qsOffset, Span<float> scales, Span<float> weight, Span<byte> L)
    {
        ReadOnlySpan<sbyte> values = Iq4NlValues;
        int subBlocks = x.Length / 32;
        var q4 = blk.Slice(qsOffset, x.Length / 2);
        q4.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(blk, 0);

        float maxScale = 0, amaxScale = 0;
        for (int ib = 0; ib < subBlocks; ib++)
        {
            var xb = x.Slice(ib * 32, 32);
            var Lb = L.Slice(ib * 32, 32);
            for (int j = 0; j < 32; j++) weight[j] = xb[j] * xb[j];
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++)
            {
                float ax = MathF.Abs(xb[j]);
                if (ax > amax) { amax = ax; max = xb[j]; }
            }
            if (amax < GroupMaxEps)
            {
                scales[ib] = 0;
                continue;
            }
            float d = -max / values[0];
            float id = 1 / d;
            float sumqx = 0, sumq2 = 0;
            for (int j = 0; j < 32; j++)
            {
                int l = BestIndexInt8(values, id * xb[j]);
                Lb[j] = (byte)l;
                float q = values[l];
                float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            d = sumqx / sumq2;
            float best = d * sumqx;
            for (int itry = -Iq4Tries; itry <= Iq4Tries; itry++)
            {
                id = (itry + values[0]) / max;
                sumqx = sumq2 = 0;
                for (int j = 0; j < 32; j++)
                {
                    float q = values[BestIndexInt8(values, id * xb[j])];
                    float w = weight[j];
                    sumqx += w * q * xb[j];
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                {
                    d = sumqx / sumq2;
                    best = d * sumqx;
                }
            }
            scales[ib] = d;
            if (MathF.Abs(d) > amaxScale) { amaxScale = MathF.Abs(d); maxScale = d; }
        }

        if (subBlocks > 1)
        {
            var scalesL = blk.Slice(IQ4_XS_ScalesL, subBlocks / 2);
            ushort scalesH = 0;
            float d = -maxScale / 32;
            BinaryPrimitives.WriteUInt16LittleEndian(blk, FloatToHalf(d));
            float id = d != 0 ? 1 / d : 0f;
            for (int ib = 0; ib < subBlocks; ib++)
            {
                int l = Math.Clamp(NearestInt(id * scales[ib]), -32, 31);
                float dl = d * l;
                float idl = dl != 0 ? 1 / dl : 0f;
                var xb = x.Slice(ib * 32, 32);
                for (int j = 0; j < 32; j++) L[ib * 32 + j] = (byte)BestIndexInt8(values, idl * xb[j]);
                l += 32;
                if (ib % 2 == 0) scalesL[ib / 2] = (byte)(l & 0xF);
                else scalesL[ib / 2] |= (byte)((l & 0xF) << 4);
                scalesH |= (ushort)((l >> 4) << (2 * (ib % 8)));
            }
            BinaryPrimitives.WriteUInt16LittleEndian(blk.Slice(IQ4_XS_ScalesH), scalesH);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(blk, FloatToHalf(scales[0]));
            float id = scales[0] != 0 ? 1 / scales[0] : 0;
            for (int j = 0; j < x.Length; j++) L[j] = (byte)BestIndexInt8(values, id * x[j]);
        }

        for (int i = 0; i < x.Length / 32; i++)
            for (int j = 0; j < 16; j++)
                q4[16 * i + j] = (byte)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
    }

    /// <summary>ggml best_index_int8: the index of the level nearest to <paramref name="x"/> (the upper one on a tie).</summary>
    private static int BestIndexInt8(ReadOnlySpan<sbyte> values, float x)
    {
        int n = values.Length;
        if (x <= values[0]) return 0;
        if (x >= values[n - 1]) return n - 1;
        int ml = 0, mu = n - 1;
        while (mu - ml > 1)
        {
            int mav = (ml + mu) / 2;
            if (x < values[mav]) mu = mav; else ml = mav;
        }
        return x - values[mu - 1] < values[mu] - x ? mu - 1 : mu;
    }
}
