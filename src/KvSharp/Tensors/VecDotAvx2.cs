using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// AVX2 + FMA vec_dot kernels, following ggml's AVX2 kernels (b4748) lane for lane: bytes are multiplied with
/// vpmaddubsw (unsigned x signed -> int16 pairs) and summed to int32 with vpmaddwd, giving 8 int32 lanes per 32
/// elements; each block's lanes are converted to float and accumulated with one FMA by the block's scale.
/// No int16 saturation can occur for valid blocks (largest pair sum: 2*63*127 + 2*32*127 for Q6_K = 24130).
/// </summary>
internal static unsafe partial class VecDotAvx2
{
    private static Vector256<byte> LowNibbles => Vector256.Create((byte)0x0F);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float HSum8(Vector256<float> x)
    {
        Vector128<float> r = Sse.Add(x.GetUpper(), x.GetLower());
        r = Sse.Add(r, Sse.MoveHighToLow(r, r));
        r = Sse.AddScalar(r, Sse3.MoveHighAndDuplicate(r));
        return r.ToScalar();
    }

    /// <summary>Signed x signed bytes: |x| * sign(y, x) through vpmaddubsw, then pairs of int16 to int32 (ggml mul_sum_i8_pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> MulSumI8Pairs(Vector256<sbyte> x, Vector256<sbyte> y)
    {
        Vector256<byte> ax = Avx2.Sign(x, x).AsByte();
        Vector256<sbyte> sy = Avx2.Sign(y, x);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ax, sy), Vector256.Create((short)1));
    }

    /// <summary>Unsigned x signed bytes to 8 int32 lanes (ggml mul_sum_us8_pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> MulSumU8Pairs(Vector256<byte> ax, Vector256<sbyte> sy)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ax, sy), Vector256.Create((short)1));

    /// <summary>16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high nibbles in 16..31 (ggml bytes_from_nibbles_32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Nibbles32(byte* p)
    {
        Vector128<byte> t = Sse2.LoadVector128(p);
        Vector128<byte> hi = Sse2.ShiftRightLogical(t.AsUInt16(), 4).AsByte();
        return Avx2.And(Vector256.Create(t, hi), LowNibbles);
    }

    /// <summary>32 bits -> 32 bytes of 0xFF (bit set) or 0x00 (ggml bytes_from_bits_32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> BytesFromBits32(uint bits)
    {
        Vector256<byte> shuf = Vector256.Create(0x0000000000000000UL, 0x0101010101010101UL, 0x0202020202020202UL, 0x0303030303030303UL).AsByte();
        Vector256<byte> bytes = Avx2.Shuffle(Vector256.Create(bits).AsByte(), shuf);
        bytes = Avx2.Or(bytes, Vector256.Create(0x7fbfdfeff7fbfdfeUL).AsByte());
        return Avx2.CompareEqual(bytes, Vector256<byte>.AllBitsSet);
    }

    /// <summary>Sum of 8 int32 lanes (exact, so the order does not matter).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int HSumInt(Vector256<int> v) => HSumInt(Sse2.Add(v.GetLower(), v.GetUpper()));

    /// <summary>
    /// Block-sequential order (see <see cref="VecDotScalar.Q8_0"/>): per block the exact integer dot, then one scalar
    /// FMA. Used for matrices that are not row-interleaved (their tail rows, or matrices built in tests).
    /// </summary>
    public static float Q8_0(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q8_0Bytes, y += Q8_0Bytes)
        {
            Vector256<sbyte> qx = Avx.LoadVector256((sbyte*)(x + 2));
            Vector256<sbyte> qy = Avx.LoadVector256((sbyte*)(y + 2));
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), HSumInt(MulSumI8Pairs(qx, qy)), acc);
        }
        return acc;
    }

    /// <summary>Block-sequential order, like <see cref="Q8_0"/>.</summary>
    public static float Q4_0(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q4_0Bytes, y += Q8_0Bytes)
        {
            Vector256<sbyte> qx = Avx2.Subtract(Nibbles32(x + 2), Vector256.Create((byte)8)).AsSByte();
            Vector256<sbyte> qy = Avx.LoadVector256((sbyte*)(y + 2));
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), HSumInt(MulSumI8Pairs(qx, qy)), acc);
        }
        return acc;
    }

    /// <summary>Block-sequential order (<see cref="VecDotScalar.Q5_0"/>), like <see cref="Q4_0"/>.</summary>
    public static float Q5_0(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q5_0Bytes, y += Q8_0Bytes)
        {
            // Elements without the 5th bit get 0xF0 or'ed in, i.e. nibble - 16 as a signed byte.
            Vector256<byte> hi = Avx2.AndNot(BytesFromBits32(*(uint*)(x + 2)), Vector256.Create((byte)0xF0));
            Vector256<sbyte> qx = Avx2.Or(Nibbles32(x + 6), hi).AsSByte();
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), HSumInt(MulSumI8Pairs(qx, Avx.LoadVector256((sbyte*)(y + 2)))), acc);
        }
        return acc;
    }

    /// <summary>Block-sequential order (<see cref="VecDotScalar.Q5_1"/>), like <see cref="Q4_1"/>.</summary>
    public static float Q5_1(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q5_1Bytes, y += Q8_1Bytes)
        {
            Vector256<byte> hi = Avx2.And(BytesFromBits32(*(uint*)(x + 4)), Vector256.Create((byte)0x10));
            Vector256<byte> qx = Avx2.Or(Nibbles32(x + 8), hi);
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), HSumInt(MulSumU8Pairs(qx, Avx.LoadVector256((sbyte*)(y + 4)))), acc);
            acc = MathF.FusedMultiplyAdd(F16(x + 2), F16(y + 2), acc);
        }
        return acc;
    }

    /// <summary>
    /// Unpacks the 12 bytes of Q4_K/Q5_K 6-bit scales and mins with ggml's utmp trick: afterwards the bytes of
    /// u0,u1 are scales 0..7 and the bytes of u2,u3 mins 0..7 (same values as <see cref="ScaleMinK4"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void UnpackScalesK4(byte* p, out ulong scales, out ulong mins)
    {
        const uint kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
        uint u0 = *(uint*)p, u1 = *(uint*)(p + 4), u2 = *(uint*)(p + 8);
        uint u3 = ((u2 >> 4) & kmask2) | (((u1 >> 6) & kmask3) << 4);
        uint aux = u1 & kmask1;
        u1 = (u2 & kmask2) | (((u0 >> 6) & kmask3) << 4);
        u2 = aux;
        u0 &= kmask1;
        scales = u0 | ((ulong)u1 << 32);
        mins = u2 | ((ulong)u3 << 32);
    }

    /// <summary>
    /// The 4 int32 lanes min[2k]*bsum32[2k] + min[2k+1]*bsum32[2k+1] (bsum32 = sum of the 32 Q8_K quants of a
    /// sub-block), as ggml's hadd_epi16 of the bsums then madd_epi16 with the mins.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<int> MinsTimesBsums(ulong mins, byte* y)
    {
        Vector128<short> q8s = Ssse3.HorizontalAdd(Sse2.LoadVector128((short*)(y + Q8_K_Bsums)), Sse2.LoadVector128((short*)(y + Q8_K_Bsums) + 8));
        Vector128<short> m = Sse41.ConvertToVector128Int16(Vector128.CreateScalar(mins).AsByte());
        return Sse2.MultiplyAddAdjacent(m, q8s);
    }

    /// <summary>Sum of 4 int32 lanes (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int HSumInt(Vector128<int> r)
    {
        r = Sse2.Add(r, Sse2.Shuffle(r, 0b_01_00_11_10));
        return Sse2.Add(r, Sse2.Shuffle(r, 0b_10_11_00_01)).ToScalar();
    }

    /// <summary>Block-sequential order (see <see cref="VecDotScalar.Q4_K"/>); for rows outside any interleaved group.</summary>
    public static float Q4_K(byte* x, byte* y, int nb) => QuantK(x, y, nb, Q4_KBytes, Q4_K_Qs, -1);

    /// <summary>Block-sequential order (see <see cref="VecDotScalar.Q5_K"/>); for rows outside any interleaved group.</summary>
    public static float Q5_K(byte* x, byte* y, int nb) => QuantK(x, y, nb, Q5_KBytes, Q5_K_Qs, Q5_K_Qh);

    /// <summary>
    /// Q4_K (<paramref name="qhOffset"/> &lt; 0) or Q5_K: per super-block the scaled sub-block dots in 8 int32 lanes
    /// and the mins times the quant sums in 4, each summed exactly, then <see cref="VecDotScalar.AccumulateK4"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float QuantK(byte* x, byte* y, int nb, int blockBytes, int qsOffset, int qhOffset)
    {
        float acc = 0;
        Vector256<byte> sixteen = Vector256.Create((byte)0x10);
        for (int i = 0; i < nb; i++, x += blockBytes, y += Q8_KBytes)
        {
            UnpackScalesK4(x + Q4_K_Scales, out ulong scales, out ulong mins);
            Vector256<byte> hbits = qhOffset < 0 ? default : Avx.LoadVector256(x + qhOffset);
            Vector256<int> sumi = Vector256<int>.Zero;
            byte* qs = x + qsOffset;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            for (int j = 0; j < 4; j++, qs += 32, q8 += 64)
            {
                Vector256<byte> bits = Avx.LoadVector256(qs);
                Vector256<byte> lo = Avx2.And(bits, LowNibbles);
                Vector256<byte> hi = Avx2.And(Avx2.ShiftRightLogical(bits.AsUInt16(), 4).AsByte(), LowNibbles);
                if (qhOffset >= 0)
                {
                    Vector256<byte> m0 = Vector256.Create((byte)(1 << (2 * j))), m1 = Vector256.Create((byte)(2 << (2 * j)));
                    lo = Avx2.Or(lo, Avx2.And(Avx2.CompareEqual(Avx2.And(hbits, m0), m0), sixteen));
                    hi = Avx2.Or(hi, Avx2.And(Avx2.CompareEqual(Avx2.And(hbits, m1), m1), sixteen));
                }
                Vector256<short> pl = Avx2.MultiplyAddAdjacent(lo, Avx.LoadVector256(q8));
                Vector256<short> ph = Avx2.MultiplyAddAdjacent(hi, Avx.LoadVector256(q8 + 32));
                Vector256<int> il = Avx2.MultiplyAddAdjacent(Vector256.Create((short)(byte)(scales >> (16 * j))), pl);
                Vector256<int> ih = Avx2.MultiplyAddAdjacent(Vector256.Create((short)(byte)(scales >> (16 * j + 8))), ph);
                sumi = Avx2.Add(sumi, Avx2.Add(il, ih));
            }
            acc = VecDotScalar.AccumulateK4(acc, *(float*)y, x, HSumInt(sumi), HSumInt(MinsTimesBsums(mins, y)));
        }
        return acc;
    }

    /// <summary>Block-sequential order (see <see cref="VecDotScalar.Q6_K"/>); for rows outside any interleaved group.</summary>
    public static float Q6_K(byte* x, byte* y, int nb)
    {
        float acc = 0;
        Vector256<byte> m2 = Vector256.Create((byte)3);
        Vector256<byte> m32 = Vector256.Create((byte)32);
        for (int i = 0; i < nb; i++, x += Q6_KBytes, y += Q8_KBytes)
        {
            sbyte* sc = (sbyte*)(x + Q6_K_Scales);
            Vector256<int> sumi = Vector256<int>.Zero;
            for (int n = 0; n < 2; n++)
            {
                byte* ql = x + Q6_K_Ql + 64 * n;
                Vector256<byte> bits1 = Avx.LoadVector256(ql);
                Vector256<byte> bits2 = Avx.LoadVector256(ql + 32);
                Vector256<byte> bitsH = Avx.LoadVector256(x + Q6_K_Qh + 32 * n);
                sbyte* q8 = (sbyte*)(y + Q8_K_Qs + 128 * n);
                for (int g = 0; g < 4; g++)
                {
                    Vector256<byte> low = (g & 1) == 0 ? bits1 : bits2;
                    if (g >= 2) low = Avx2.ShiftRightLogical(low.AsUInt16(), 4).AsByte();
                    Vector256<byte> h = Avx2.And(Avx2.ShiftRightLogical(bitsH.AsUInt16(), Vector128.CreateScalar((ushort)(2 * g))).AsByte(), m2);
                    Vector256<byte> q = Avx2.Or(Avx2.And(low, LowNibbles), Avx2.ShiftLeftLogical(h.AsUInt16(), 4).AsByte());
                    Vector256<sbyte> q8v = Avx.LoadVector256(q8 + 32 * g);
                    // (q - 32) * q8 as q*q8 - 32*q8, both through vpmaddubsw (exact: each pair is at most 2 x 63 x 128).
                    Vector256<short> p = Avx2.Subtract(Avx2.MultiplyAddAdjacent(q, q8v), Avx2.MultiplyAddAdjacent(m32, q8v));
                    Vector256<short> s = Vector256.Create(Vector128.Create((short)sc[8 * n + 2 * g]), Vector128.Create((short)sc[8 * n + 2 * g + 1]));
                    sumi = Avx2.Add(sumi, Avx2.MultiplyAddAdjacent(s, p));
                }
            }
            acc = MathF.FusedMultiplyAdd(*(float*)y * F16(x + Q6_K_D), HSumInt(sumi), acc);
        }
        return acc;
    }

    /// <summary>ggml GGML_F32x8_REDUCE: (a0+a2)+(a1+a3), lo+hi, two hadds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Reduce4(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        Vector256<float> s = Avx.Add(Avx.Add(a0, a2), Avx.Add(a1, a3));
        Vector128<float> t = Sse.Add(s.GetLower(), s.GetUpper());
        t = Sse3.HorizontalAdd(t, t);
        return Sse3.HorizontalAdd(t, t).ToScalar();
    }

    /// <summary>F32 in the interleaved kernels' order (see <see cref="VecDotScalar.DotF32"/>); for rows outside any group.</summary>
    public static float DotF32(float* x, float* y, int n) => VecDotScalar.DotF32(x, y, n);

    /// <summary>
    /// 8 binary16 -> 8 binary32, exactly (.NET exposes no F16C): exponent and mantissa are placed in a float and
    /// scaled by 2^112, which rebiases normals and renormalizes subnormals exactly; an all-ones exponent (Inf/NaN)
    /// gets the float's all-ones exponent or'ed in; the sign comes from sign-extending the half.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> HalfToSingle(ushort* p) => HalfToSingle(Avx2.ConvertToVector256Int32((short*)p));

    /// <summary>Eight halves, already sign-extended to int32 lanes, widened exactly to floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> HalfToSingle(Vector256<int> h)
    {
        Vector256<int> em = Avx2.And(h, Vector256.Create(0x7fff));
        Vector256<int> f = Avx.Multiply(Avx2.ShiftLeftLogical(em, 13).AsSingle(), Vector256.Create(5.192297e33f /* 2^112 */)).AsInt32();
        Vector256<int> infNan = Avx2.And(Avx2.CompareGreaterThan(em, Vector256.Create(0x7bff)), Vector256.Create(0x7f800000));
        return Avx2.Or(Avx2.Or(f, infNan), Avx2.And(h, Vector256.Create(int.MinValue))).AsSingle();
    }

    public static float DotF16(ushort* x, ushort* y, int n)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int np = n & ~31;
        for (int i = 0; i < np; i += 32)
        {
            a0 = Fma.MultiplyAdd(HalfToSingle(x + i), HalfToSingle(y + i), a0);
            a1 = Fma.MultiplyAdd(HalfToSingle(x + i + 8), HalfToSingle(y + i + 8), a1);
            a2 = Fma.MultiplyAdd(HalfToSingle(x + i + 16), HalfToSingle(y + i + 16), a2);
            a3 = Fma.MultiplyAdd(HalfToSingle(x + i + 24), HalfToSingle(y + i + 24), a3);
        }
        double sum = Reduce4(a0, a1, a2, a3);
        for (int i = np; i < n; i++) sum += HalfToFloat(x[i]) * HalfToFloat(y[i]);
        return (float)sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> BF16ToSingle(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    public static float DotBF16(ushort* x, ushort* y, int n)
    {
        Vector256<float> c1 = default, c2 = default, c3 = default, c4 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            c1 = Fma.MultiplyAdd(BF16ToSingle(x + i), BF16ToSingle(y + i), c1);
            c2 = Fma.MultiplyAdd(BF16ToSingle(x + i + 8), BF16ToSingle(y + i + 8), c2);
            c3 = Fma.MultiplyAdd(BF16ToSingle(x + i + 16), BF16ToSingle(y + i + 16), c3);
            c4 = Fma.MultiplyAdd(BF16ToSingle(x + i + 24), BF16ToSingle(y + i + 24), c4);
        }
        double sum = HSum8(Avx.Add(Avx.Add(c1, c3), Avx.Add(c2, c4)));
        for (; i < n; i++) sum += BF16ToFloat(x[i]) * BF16ToFloat(y[i]);
        return (float)sum;
    }
}
