using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotScalar
{
    /// <summary>
    /// Q2_K weights x Q8_K activations in ggml's AVX2 lanes (ggml_vec_dot_q2_K_q8_K): per super-block first
    /// acc[l] = fma(−dy·dmin, m[2l]·bsum[2l] + m[2l+1]·bsum[2l+1], acc[l]) (the sixteen 4-bit mins against the
    /// sixteen Q8_K sums), then acc[l] = fma(dy·d, lane, acc[l]) with lane l summing elements 4l..4l+3 of every
    /// 32-element group times their 4-bit scale, exactly in int32; hsum_float_8 at the end.
    /// Bounds: |lane| ≤ 8 · 4 · 15 · 3 · 128 &lt; 2^18, |min lane| ≤ 2 · 15 · 16 · 128 &lt; 2^16.
    /// </summary>
    public static float Q2_K(byte* x, byte* y, int nb)
    {
        Lanes8F acc = default;
        for (int i = 0; i < nb; i++, x += Q2_KBytes, y += Q8_KBytes)
        {
            float dy = *(float*)y;
            byte* sc = x + Q2_K_Scales;
            short* bsums = (short*)(y + Q8_K_Bsums);
            Lanes8I mins = default;
            for (int l = 0; l < 8; l++) mins[l] = (sc[2 * l] >> 4) * bsums[2 * l] + (sc[2 * l + 1] >> 4) * bsums[2 * l + 1];
            LegacyFinish(ref acc, ref mins, -dy * F16(x + Q2_K_Dmin));

            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Lanes8I lanes = default;
            int* lane = (int*)&lanes;
            // Element 128n + 32g + e: bits 2g of qs[32n + e], sub-block 8n + 2g + e/16.
            for (int n = 0; n < 2; n++)
                for (int g = 0; g < 4; g++)
                {
                    byte* qs = x + Q2_K_Qs + 32 * n;
                    sbyte* q = q8 + 128 * n + 32 * g;
                    int shift = 2 * g;
                    for (int l = 0; l < 8; l++)
                    {
                        int s = 0;
                        for (int e = 4 * l; e < 4 * l + 4; e++) s += ((qs[e] >> shift) & 3) * q[e];
                        lane[l] += (sc[8 * n + 2 * g + (l >> 2)] & 0xF) * s;
                    }
                }
            LegacyFinish(ref acc, ref lanes, dy * F16(x + Q2_K_D));
        }
        return HSum8(ref acc);
    }
}
