using System.Runtime.CompilerServices;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotScalar
{
    /// <summary>
    /// IQ4_NL weights x Q8_0 activations in block-sequential order, like <see cref="Q4_0"/> (IQ4_NL is Q4_0's block with
    /// the nibbles mapped through a level table): per block the exact integer dot, then acc = fma(dx·dy, sum, acc).
    /// </summary>
    /// <remarks>
    /// ggml's own IQ4_NL vec_dot keeps eight float lanes and two block accumulators; llama.cpp's prompt products
    /// (llamafile's tinyBLAS) keep one accumulator of eight lanes. Neither order lets a kernel over several rows share
    /// its table lookup across tokens cheaply, and llama.cpp itself mixes the two (vec_dot for one token, tinyBLAS for
    /// more). This one is what every IQ4_NL kernel here computes, scalar, AVX2 and AVX-512, one token or many, so
    /// prefill and decode agree bit for bit; against llama.cpp it differs only in float rounding (RequantizedParityTests).
    /// </remarks>
    public static float Iq4Nl(byte* x, byte* y, int nb) => NibbleLevelRow<Iq4NlLevels>(x, y, nb);

    /// <summary>A nibble-level row (IQ4_NL, MXFP4) x Q8_0: per block the exact integer dot, then acc = fma(d·dy, sum, acc).</summary>
    internal static float NibbleLevelRow<K>(byte* x, byte* y, int nb) where K : INibbleLevels
    {
        int quants = NibbleLevelScales.ScaleBytes<K>();
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += K.BlockBytes, y += Q8_0Bytes)
            acc = MathF.FusedMultiplyAdd(K.Scale(x) * F16(y), NibbleLevelDot(K.Levels, x + quants, (sbyte*)(y + 2)), acc);
        return acc;
    }

    /// <summary>
    /// The exact integer dot of one block's 16 bytes of 4-bit level indices (low nibbles elements 0..15, high nibbles
    /// 16..31) with 32 activation quants: IQ4_NL's and MXFP4's block sum.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int NibbleLevelDot(ReadOnlySpan<sbyte> levels, byte* qs, sbyte* q8)
    {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum += levels[qs[j] & 0xF] * q8[j] + levels[qs[j] >> 4] * q8[16 + j];
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
