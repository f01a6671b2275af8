using System.Runtime.CompilerServices;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Portable vec_dot kernels. They emulate the 8 float lanes of the AVX2 kernels: lane l of a 32-element group owns
/// elements 4l..4l+3 (what maddubs + madd produce), each lane is scaled with one fused multiply-add per block, and the
/// lanes are reduced in hsum_float_8's order. Integer sums are exact, so the result equals the AVX2 one bit for bit.
/// Q8_0, Q4_0, Q5_0, Q5_1, Q4_1, IQ4_NL, the K-quants and F32 are the exception: they use the interleaved kernels' order (a block, or a column pair, at
/// a time into one accumulator per row), and the AVX2 single-row kernels follow them; MXFP4, not interleaved, takes IQ4_NL's order too.
/// </summary>
internal static unsafe partial class VecDotScalar
{
    [InlineArray(8)]
    internal struct Lanes8F { private float _e; }

    [InlineArray(8)]
    internal struct Lanes8I { private int _e; }

    /// <summary>ggml hsum_float_8: (hi + lo) then pairwise like movehl/movehdup.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float HSum8(ref Lanes8F a)
    {
        float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
        return (r0 + r2) + (r1 + r3);
    }

    /// <summary>Accumulates 32 weight values times 32 activation bytes into the 8 lane sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void LaneDot32(int* wv, sbyte* q, ref Lanes8I lanes, int scale)
    {
        for (int l = 0; l < 8; l++)
        {
            int s = wv[4 * l] * q[4 * l] + wv[4 * l + 1] * q[4 * l + 1] + wv[4 * l + 2] * q[4 * l + 2] + wv[4 * l + 3] * q[4 * l + 3];
            lanes[l] += scale * s;
        }
    }

    /// <summary>acc = fma(d, float(lane), acc) per lane, as _mm256_fmadd_ps(d, cvtepi32_ps(sum), acc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void LegacyFinish(ref Lanes8F acc, ref Lanes8I lanes, float d)
    {
        for (int l = 0; l < 8; l++) acc[l] = MathF.FusedMultiplyAdd(d, lanes[l], acc[l]);
    }

    /// <summary>
    /// Q8_0 weights x Q8_0 activations in block-sequential order (not ggml's lanes): per block the exact integer dot,
    /// then acc = fma(dx * dy, sum, acc) in block order — the order in which <see cref="VecDotAvx2Interleaved"/>
    /// accumulates eight rows side by side, one per lane.
    /// </summary>
    public static float Q8_0(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q8_0Bytes, y += Q8_0Bytes)
        {
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += (sbyte)x[2 + j] * (sbyte)y[2 + j];
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), sum, acc);
        }
        return acc;
    }

    /// <summary>Q4_0 weights x Q8_0 activations in block-sequential order, like <see cref="Q8_0"/>.</summary>
    public static float Q4_0(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q4_0Bytes, y += Q8_0Bytes)
        {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += ((x[2 + j] & 0xF) - 8) * (sbyte)y[2 + j] + ((x[2 + j] >> 4) - 8) * (sbyte)y[18 + j];
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), sum, acc);
        }
        return acc;
    }

    /// <summary>
    /// Q5_0 weights x Q8_0 activations in block-sequential order, like <see cref="Q4_0"/>: per block the exact integer
    /// Σ(q5 - 16)·q, then acc = fma(dx·dy, sum, acc).
    /// </summary>
    public static float Q5_0(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q5_0Bytes, y += Q8_0Bytes)
        {
            uint qh = *(uint*)(x + 2);
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += (((x[6 + j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16) * (sbyte)y[2 + j]
                    + (((x[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16) * (sbyte)y[18 + j];
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), sum, acc);
        }
        return acc;
    }

    /// <summary>
    /// Q5_1 weights x Q8_1 activations in block-sequential order, like <see cref="Q4_1"/>: per block the exact Σq5·q,
    /// acc = fma(dx·dy, sum, acc), then acc = fma(m, s, acc).
    /// </summary>
    public static float Q5_1(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q5_1Bytes, y += Q8_1Bytes)
        {
            uint qh = *(uint*)(x + 4);
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += ((x[8 + j] & 0xF) | (int)(((qh >> j) & 1) << 4)) * (sbyte)y[4 + j]
                    + ((x[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) * (sbyte)y[20 + j];
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), sum, acc);
            acc = MathF.FusedMultiplyAdd(F16(x + 2), F16(y + 2), acc);
        }
        return acc;
    }

    /// <summary>Sum of the 32 Q8_K quants of sub-block <paramref name="k"/> (0..7) from the two 16-element bsums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Bsum32(byte* y, int k) => ((short*)(y + Q8_K_Bsums))[2 * k] + ((short*)(y + Q8_K_Bsums))[2 * k + 1];

    /// <summary>
    /// Q4_K weights x Q8_K activations in block-sequential order (not ggml's lanes): per super-block the exact integer
    /// sums isum = Σ_k sc_k · dot(q_k, y_k) over the eight sub-blocks and msum = Σ_k m_k · bsum32_k, then
    /// <see cref="AccumulateK4"/> — the order in which <see cref="VecDotAvx2Interleaved"/> accumulates eight rows side
    /// by side. Bounds: |dot_k| ≤ 32·15·128, so |isum| ≤ 8·63·61440 &lt; 2^25 and |msum| ≤ 8·63·32·128 &lt; 2^21 (int32).
    /// </summary>
    public static float Q4_K(byte* x, byte* y, int nb) => QuantK(x, y, nb, Q4_KBytes, Q4_K_Qs, -1);

    /// <summary>Q5_K in the order of <see cref="Q4_K"/> (quants up to 31: |isum| ≤ 8·63·32·31·128 &lt; 2^26).</summary>
    public static float Q5_K(byte* x, byte* y, int nb) => QuantK(x, y, nb, Q5_KBytes, Q5_K_Qs, Q5_K_Qh);

    /// <summary>Q4_K (<paramref name="qhOffset"/> &lt; 0) or Q5_K (the fifth bits at qhOffset) in block-sequential order.</summary>
    private static float QuantK(byte* x, byte* y, int nb, int blockBytes, int qsOffset, int qhOffset)
    {
        float acc = 0;
        for (int i = 0; i < nb; i++, x += blockBytes, y += Q8_KBytes)
        {
            int isum = 0, msum = 0;
            byte* qs = x + qsOffset;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            for (int j = 0; j < 4; j++, qs += 32, q8 += 64)
            {
                ScaleMinK4(2 * j, x + Q4_K_Scales, out int sc0, out int m0);
                ScaleMinK4(2 * j + 1, x + Q4_K_Scales, out int sc1, out int m1);
                int lo = 0, hi = 0;
                for (int l = 0; l < 32; l++)
                {
                    int h = qhOffset < 0 ? 0 : x[qhOffset + l] >> (2 * j);
                    lo += ((qs[l] & 0xF) | ((h & 1) << 4)) * q8[l];
                    hi += ((qs[l] >> 4) | ((h & 2) << 3)) * q8[32 + l];
                }
                isum += sc0 * lo + sc1 * hi;
                msum += m0 * Bsum32(y, 2 * j) + m1 * Bsum32(y, 2 * j + 1);
            }
            acc = AccumulateK4(acc, *(float*)y, x, isum, msum);
        }
        return acc;
    }

    /// <summary>
    /// One Q4_K/Q5_K super-block's float step, shared by all their kernels: acc = fma(dy·d, isum, acc), then
    /// acc = fma(-(dy·dmin), msum, acc), with d and dmin the block's halves at <paramref name="x"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float AccumulateK4(float acc, float dy, byte* x, int isum, int msum)
    {
        acc = MathF.FusedMultiplyAdd(dy * F16(x), isum, acc);
        return MathF.FusedMultiplyAdd(-(dy * F16(x + 2)), msum, acc);
    }

    /// <summary>
    /// Q6_K weights x Q8_K activations in block-sequential order (not ggml's lanes): per super-block the exact integer
    /// isum = Σ_k sc_k · Σ (q - 32) · y over its sixteen sub-blocks of 16, then acc = fma(dy · d, isum, acc) — the
    /// order of <see cref="VecDotAvx2Interleaved"/>. Bound: |isum| ≤ 16 · 128 · 16 · 32 · 128 = 2^27 (int32).
    /// </summary>
    public static float Q6_K(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int i = 0; i < nb; i++, x += Q6_KBytes, y += Q8_KBytes)
        {
            sbyte* sc = (sbyte*)(x + Q6_K_Scales);
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            int isum = 0;
            // Sub-block k = 8n + 2g + h: elements 128n + 32g + 16h .. +15 of half n, group g (low bits from the low
            // nibbles of ql for g = 0, 1 and the high ones for g = 2, 3; high bits 2g, 2g + 1 of qh).
            for (int k = 0; k < 16; k++)
            {
                int n = k >> 3, g = (k >> 1) & 3, h = k & 1;
                byte* ql = x + Q6_K_Ql + 64 * n + 32 * (g & 1) + 16 * h;
                byte* qh = x + Q6_K_Qh + 32 * n + 16 * h;
                sbyte* q = q8 + 128 * n + 32 * g + 16 * h;
                int dot = 0;
                for (int l = 0; l < 16; l++)
                    dot += ((((ql[l] >> (4 * (g >> 1))) & 0xF) | (((qh[l] >> (2 * g)) & 3) << 4)) - 32) * q[l];
                isum += sc[k] * dot;
            }
            acc = MathF.FusedMultiplyAdd(*(float*)y * F16(x + Q6_K_D), isum, acc);
        }
        return acc;
    }

    /// <summary>ggml GGML_F32x8_REDUCE of four 8-lane accumulators: (a0+a2)+(a1+a3), lo+hi, then two hadds.</summary>
    private static float Reduce4x8(float* a)
    {
        float* r = stackalloc float[8];
        for (int l = 0; l < 8; l++) r[l] = (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]);
        float t0 = r[0] + r[4], t1 = r[1] + r[5], t2 = r[2] + r[6], t3 = r[3] + r[7];
        return (t0 + t1) + (t2 + t3);
    }

    /// <summary>
    /// F32 in the order of <see cref="VecDotAvx2Interleaved.F32x4"/>: two FMA chains, even and odd columns, then their
    /// sum. (Not ggml's 32-lane order: interleaved rows put a row in one lane, so a row's sum is a chain.)
    /// </summary>
    public static float DotF32(float* x, float* y, int n)
    {
        float a = 0, b = 0;
        int c = 0;
        for (; c + 2 <= n; c += 2)
        {
            a = MathF.FusedMultiplyAdd(x[c], y[c], a);
            b = MathF.FusedMultiplyAdd(x[c + 1], y[c + 1], b);
        }
        if (c < n) a = MathF.FusedMultiplyAdd(x[c], y[c], a);
        return a + b;
    }

    public static float DotF16(ushort* x, ushort* y, int n)
    {
        float* acc = stackalloc float[32];
        new Span<float>(acc, 32).Clear();
        int np = n & ~31;
        for (int i = 0; i < np; i += 32)
            for (int k = 0; k < 32; k++) acc[k] = MathF.FusedMultiplyAdd(HalfToFloat(x[i + k]), HalfToFloat(y[i + k]), acc[k]);
        double sum = Reduce4x8(acc);
        for (int i = np; i < n; i++) sum += HalfToFloat(x[i]) * HalfToFloat(y[i]);
        return (float)sum;
    }

    public static float DotBF16(ushort* x, ushort* y, int n)
    {
        float* c = stackalloc float[32]; // c1..c4 of ggml_vec_dot_bf16
        new Span<float>(c, 32).Clear();
        int i = 0;
        for (; i + 32 <= n; i += 32)
            for (int k = 0; k < 32; k++) c[k] = MathF.FusedMultiplyAdd(BF16ToFloat(x[i + k]), BF16ToFloat(y[i + k]), c[k]);
        // (c1 + c3) + (c2 + c4), then hi + lo and movehl/movehdup like hsum_float_8.
        Lanes8F v = default;
        for (int l = 0; l < 8; l++) v[l] = (c[l] + c[16 + l]) + (c[8 + l] + c[24 + l]);
        double sum = HSum8(ref v);
        for (; i < n; i++) sum += BF16ToFloat(x[i]) * BF16ToFloat(y[i]);
        return (float)sum;
    }
}
