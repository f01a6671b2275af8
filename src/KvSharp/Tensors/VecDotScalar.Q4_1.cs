using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotScalar
{
    /// <summary>
    /// Q4_1 weights x Q8_1 activations in ggml's AVX2 order (as <see cref="Q5_1"/>): 8 lanes, one FMA by dx·dy per
    /// block, the min term m·s summed apart with FMAs and added after the lanes are reduced.
    /// </summary>
    public static float Q4_1(byte* x, byte* y, int nb)
    {
        Lanes8F acc = default;
        float summs = 0;
        int* wv = stackalloc int[32];
        for (int ib = 0; ib < nb; ib++, x += Q4_1Bytes, y += Q8_1Bytes)
        {
            summs = MathF.FusedMultiplyAdd(F16(x + 2), F16(y + 2), summs);
            for (int j = 0; j < 16; j++)
            {
                wv[j] = x[4 + j] & 0xF;
                wv[j + 16] = x[4 + j] >> 4;
            }
            Lanes8I lanes = default;
            LaneDot32(wv, (sbyte*)(y + 4), ref lanes, 1);
            LegacyFinish(ref acc, ref lanes, F16(x) * F16(y));
        }
        return HSum8(ref acc) + summs;
    }
}
