using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotScalar
{
    /// <summary>
    /// IQ4_NL weights x Q8_0 activations in ggml's AVX2 order: even blocks into one set of 8 lanes, odd blocks into a
    /// second, each with one FMA by d = dy·dx per block; the two are added lane by lane and reduced, and an odd last
    /// block is added with a scalar FMA (ggml's tail loop, contracted by GCC).
    /// </summary>
    public static float Iq4Nl(byte* x, byte* y, int nb)
    {
        Lanes8F acc1 = default, acc2 = default;
        int* wv = stackalloc int[32];
        int ib = 0;
        for (; ib + 1 < nb; ib += 2, x += 2 * IQ4_NLBytes, y += 2 * Q8_0Bytes)
        {
            Iq4NlBlockLanes(x, y, wv, ref acc1);
            Iq4NlBlockLanes(x + IQ4_NLBytes, y + Q8_0Bytes, wv, ref acc2);
        }
        for (int l = 0; l < 8; l++) acc1[l] += acc2[l];
        float sum = HSum8(ref acc1);
        if (ib < nb)
        {
            Iq4Levels(x + 2, wv);
            int s = 0;
            for (int j = 0; j < 32; j++) s += wv[j] * (sbyte)y[2 + j];
            sum = MathF.FusedMultiplyAdd(F16(y) * F16(x), s, sum);
        }
        return sum;
    }

    /// <summary>
    /// IQ4_XS weights x Q8_K activations in ggml's AVX2 order: per super-block the 8 int32 lanes of Σ ls_k · (lane dot of
    /// sub-block k), exact, then one FMA by d · dy per lane; the lanes are reduced at the end.
    /// Bound: |lane| ≤ 8 · 32 · 4 · 127 · 127 &lt; 2^24.
    /// </summary>
    public static float Iq4Xs(byte* x, byte* y, int nb)
    {
        Lanes8F acc = default;
        int* wv = stackalloc int[32];
        for (int i = 0; i < nb; i++, x += IQ4_XSBytes, y += Q8_KBytes)
        {
            Lanes8I lanes = default;
            for (int ib = 0; ib < QK_K / 32; ib++)
            {
                int ls = Iq4XsScale(new ReadOnlySpan<byte>(x, IQ4_XSBytes), ib) - 32;
                Iq4Levels(x + IQ4_XS_Qs + 16 * ib, wv);
                LaneDot32(wv, (sbyte*)(y + Q8_K_Qs + 32 * ib), ref lanes, ls);
            }
            LegacyFinish(ref acc, ref lanes, F16(x) * *(float*)y);
        }
        return HSum8(ref acc);
    }

    private static void Iq4NlBlockLanes(byte* x, byte* y, int* wv, ref Lanes8F acc)
    {
        Iq4Levels(x + 2, wv);
        Lanes8I lanes = default;
        LaneDot32(wv, (sbyte*)(y + 2), ref lanes, 1);
        LegacyFinish(ref acc, ref lanes, F16(y) * F16(x));
    }

    /// <summary>16 bytes of IQ4 nibbles -> the 32 levels: low nibbles are elements 0..15, high nibbles 16..31.</summary>
    private static void Iq4Levels(byte* qs, int* wv)
    {
        ReadOnlySpan<sbyte> kv = Iq4NlValues;
        for (int j = 0; j < 16; j++)
        {
            wv[j] = kv[qs[j] & 0xF];
            wv[j + 16] = kv[qs[j] >> 4];
        }
    }
}
