using System.Runtime.Intrinsics;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotScalar
{
    /// <summary>
    /// Q3_K weights x Q8_K activations in ggml's AVX2 lanes (ggml_vec_dot_q3_K_q8_K): lane l of every 32-element group
    /// sums elements 4l..4l+3 times their sub-block scale, exactly in int32 over the whole super-block; then
    /// acc[l] = fma(dy·d, lane, acc[l]) per super-block and hsum_float_8 at the end.
    /// Bound: |lane| ≤ 8 groups · 4 · 32 · 4 · 128 = 2^19.
    /// </summary>
    public static float Q3_K(byte* x, byte* y, int nb)
    {
        Lanes8F acc = default;
        for (int i = 0; i < nb; i++, x += Q3_KBytes, y += Q8_KBytes)
        {
            Vector128<uint> packed = Q3KScales.Unpack(x + Q3_K_Scales);
            byte* sc = (byte*)&packed;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Lanes8I lanes = default;
            int* lane = (int*)&lanes;
            // Element 128n + 32g + e: bits 2g of qs[32n + e], high bit 4n + g of hmask[e], sub-block 8n + 2g + e/16.
            for (int n = 0; n < 2; n++)
                for (int g = 0; g < 4; g++)
                {
                    byte* qs = x + Q3_K_Qs + 32 * n, hm = x + Q3_K_Hmask;
                    sbyte* q = q8 + 128 * n + 32 * g;
                    int shift = 2 * g, bit = 4 * n + g;
                    for (int l = 0; l < 8; l++)
                    {
                        int s = 0;
                        for (int e = 4 * l; e < 4 * l + 4; e++)
                            s += (((qs[e] >> shift) & 3) - ((~hm[e] >> bit) & 1) * 4) * q[e];
                        lane[l] += (sc[8 * n + 2 * g + (l >> 2)] - 32) * s;
                    }
                }
            LegacyFinish(ref acc, ref lanes, *(float*)y * F16(x + Q3_K_D));
        }
        return HSum8(ref acc);
    }
}
