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
