using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Four-token variants of the AVX2 kernels for batched matmuls: one weight row against four activation rows, the
/// weight block loaded and unpacked once and reused four times. For each token the arithmetic is exactly the
/// single-token kernel's (same integer lanes, same FMA per block, same final reduction), so every output is
/// bit-identical to <see cref="VecDotAvx2"/>'s. That is what keeps <see cref="MatMul"/> batch-invariant.
/// </summary>
internal static unsafe class VecDotAvx2Multi
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulSumI8(Vector256<byte> ax, Vector256<sbyte> x, sbyte* y)
    {
        Vector256<sbyte> sy = Avx2.Sign(Avx.LoadVector256(y), x);
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ax, sy), Vector256.Create((short)1)));
    }

    /// <summary>out[k] = dot(x, y + k*yStride) for k = 0..3; x is a Q8_0 or Q4_0 row (see <paramref name="q4"/>), y Q8_0 rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Legacy8x4(byte* x, byte* y, nint yStride, int nb, float* result, bool q4)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int xBytes = q4 ? Q4_0Bytes : Q8_0Bytes;
        for (int ib = 0; ib < nb; ib++, x += xBytes, y += Q8_0Bytes)
        {
            float dx = F16(x);
            Vector256<sbyte> qx;
            if (q4)
            {
                Vector128<byte> t = Sse2.LoadVector128(x + 2);
                Vector256<byte> nib = Avx2.And(Vector256.Create(t, Sse2.ShiftRightLogical(t.AsUInt16(), 4).AsByte()), Vector256.Create((byte)0x0F));
                qx = Avx2.Subtract(nib, Vector256.Create((byte)8)).AsSByte();
            }
            else
            {
                qx = Avx.LoadVector256((sbyte*)(x + 2));
            }
            Vector256<byte> ax = Avx2.Sign(qx, qx).AsByte();
            byte* y0 = y, y1 = y + yStride, y2 = y + 2 * yStride, y3 = y + 3 * yStride;
            a0 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y0)), MulSumI8(ax, qx, (sbyte*)(y0 + 2)), a0);
            a1 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y1)), MulSumI8(ax, qx, (sbyte*)(y1 + 2)), a1);
            a2 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y2)), MulSumI8(ax, qx, (sbyte*)(y2 + 2)), a2);
            a3 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y3)), MulSumI8(ax, qx, (sbyte*)(y3 + 2)), a3);
        }
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
    }

    public static void Q8_0x4(byte* x, byte* y, nint yStride, int n, float* result) => Legacy8x4(x, y, yStride, n / 32, result, q4: false);

    public static void Q4_0x4(byte* x, byte* y, nint yStride, int n, float* result) => Legacy8x4(x, y, yStride, n / 32, result, q4: true);

    /// <summary>Four-token Q4_K x Q8_K; per token the same operations as <see cref="VecDotAvx2.Q4_K"/>.</summary>
    public static void Q4_Kx4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        int nb = n / 256;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector128<float> m0 = default, m1 = default, m2 = default, m3 = default;
        Vector256<byte> low = Vector256.Create((byte)0x0F);
        for (int i = 0; i < nb; i++, x += Q4_KBytes, y += Q8_KBytes)
        {
            float xd = F16(x), xdmin = F16(x + 2);
            VecDotAvx2.UnpackScalesK4(x + Q4_K_Scales, out ulong scales, out ulong mins);
            Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
            byte* q4 = x + Q4_K_Qs;
            for (int j = 0; j < 4; j++, q4 += 32)
            {
                Vector256<byte> bits = Avx.LoadVector256(q4);
                Vector256<byte> lo = Avx2.And(bits, low);
                Vector256<byte> hi = Avx2.And(Avx2.ShiftRightLogical(bits.AsUInt16(), 4).AsByte(), low);
                Vector256<short> scl = Vector256.Create((short)(byte)(scales >> (16 * j))), sch = Vector256.Create((short)(byte)(scales >> (16 * j + 8)));
                int off = Q8_K_Qs + 64 * j;
                s0 = Avx2.Add(s0, Sub(lo, hi, scl, sch, (sbyte*)(y + off)));
                s1 = Avx2.Add(s1, Sub(lo, hi, scl, sch, (sbyte*)(y + yStride + off)));
                s2 = Avx2.Add(s2, Sub(lo, hi, scl, sch, (sbyte*)(y + 2 * yStride + off)));
                s3 = Avx2.Add(s3, Sub(lo, hi, scl, sch, (sbyte*)(y + 3 * yStride + off)));
            }
            Finish(ref a0, ref m0, y, xd, xdmin, mins, s0);
            Finish(ref a1, ref m1, y + yStride, xd, xdmin, mins, s1);
            Finish(ref a2, ref m2, y + 2 * yStride, xd, xdmin, mins, s2);
            Finish(ref a3, ref m3, y + 3 * yStride, xd, xdmin, mins, s3);
        }
        result[0] = VecDotAvx2.HSum8(a0) + HSum4(m0);
        result[1] = VecDotAvx2.HSum8(a1) + HSum4(m1);
        result[2] = VecDotAvx2.HSum8(a2) + HSum4(m2);
        result[3] = VecDotAvx2.HSum8(a3) + HSum4(m3);

        static Vector256<int> Sub(Vector256<byte> lo, Vector256<byte> hi, Vector256<short> scl, Vector256<short> sch, sbyte* q8)
        {
            Vector256<int> il = Avx2.MultiplyAddAdjacent(scl, Avx2.MultiplyAddAdjacent(lo, Avx.LoadVector256(q8)));
            Vector256<int> ih = Avx2.MultiplyAddAdjacent(sch, Avx2.MultiplyAddAdjacent(hi, Avx.LoadVector256(q8 + 32)));
            return Avx2.Add(il, ih);
        }

        static void Finish(ref Vector256<float> acc, ref Vector128<float> accM, byte* y, float xd, float xdmin, ulong mins, Vector256<int> sumi)
        {
            float yd = *(float*)y;
            float d = yd * xd, dmin = -yd * xdmin;
            Vector128<int> prod = VecDotAvx2.MinsTimesBsums(mins, y);
            accM = Fma.MultiplyAdd(Vector128.Create(dmin), Sse2.ConvertToVector128Single(prod), accM);
            acc = Fma.MultiplyAdd(Vector256.Create(d), Avx.ConvertToVector256Single(sumi), acc);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HSum4(Vector128<float> m)
    {
        m = Sse.Add(m, Sse.MoveHighToLow(m, m));
        return Sse.AddScalar(m, Sse3.MoveHighAndDuplicate(m)).ToScalar();
    }
}
