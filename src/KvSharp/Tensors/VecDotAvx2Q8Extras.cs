using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Q8_0 and Q4_0 matmul kernels that read a Q8_0 activation row followed by per-block extras which
/// <see cref="MatMul"/> computes once per row (<see cref="Append"/>):
/// <list type="bullet">
/// <item>the block scale as a float (so a kernel broadcasts it from memory instead of converting a half per row),</item>
/// <item>then 8 x the sum of each group of 4 quants, as 8 int32 lanes (36 bytes per block).</item>
/// </list>
/// With the lane sums a Q4_0 block needs no sign tricks: vpmaddubsw multiplies the unsigned nibbles (0..15) by the
/// activation bytes, vpmaddwd sums them to 8 int32 lanes, and subtracting 8 x the lane sums gives exactly
/// sum((nibble - 8) * y) in each lane, the same integers as ggml's sign-trick lanes. The float steps (scale product,
/// one FMA per block, final reduction) are <see cref="VecDotAvx2"/>'s, so results are bit-identical to it.
/// </summary>
internal static unsafe class VecDotAvx2Q8Extras
{
    /// <summary>Extra bytes after a Q8_0 row of <paramref name="blocks"/> blocks: per block a float and 8 int32.</summary>
    public static int ExtraBytes(int blocks) => blocks * ExtraBlock;

    private const int ExtraBlock = 36;

    /// <summary>Writes the extras of the Q8_0 row at <paramref name="row"/> right after its blocks.</summary>
    public static void Append(byte* row, int blocks)
    {
        byte* e = row + blocks * Q8_0Bytes;
        Vector256<byte> ones8 = Vector256.Create((byte)1);
        Vector256<short> ones16 = Vector256.Create((short)1);
        for (int b = 0; b < blocks; b++, e += ExtraBlock)
        {
            byte* blk = row + b * Q8_0Bytes;
            *(float*)e = F16(blk);
            Vector256<int> sum4 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ones8, Avx.LoadVector256((sbyte*)(blk + 2))), ones16);
            Avx.Store((int*)(e + 4), Avx2.ShiftLeftLogical(sum4, 3));
        }
    }

    /// <summary>16 packed bytes -> 32 nibbles (low nibbles then high nibbles) from one broadcast load.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Nibbles(byte* p)
    {
        Vector256<uint> t = Avx2.BroadcastVector128ToVector256(p).AsUInt32();
        return Avx2.And(Avx2.ShiftRightLogicalVariable(t, Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4)).AsByte(), Vector256.Create((byte)0x0F));
    }

    /// <summary>The int32 lanes of a Q4_0 block (unsigned nibbles) with the activation block at y and its extras at e.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q4Lanes(Vector256<byte> nib, byte* y, byte* e)
        => Avx.ConvertToVector256Single(Avx2.Subtract(
            Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(nib, Avx.LoadVector256((sbyte*)(y + 2))), Vector256.Create((short)1)),
            Avx.LoadVector256((int*)(e + 4))));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q8Lanes(Vector256<byte> ax, Vector256<sbyte> qx, byte* y)
    {
        Vector256<sbyte> sy = Avx2.Sign(Avx.LoadVector256((sbyte*)(y + 2)), qx);
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ax, sy), Vector256.Create((short)1)));
    }

    /// <summary>The block's scale product: x's half scale times the activation's float scale (extras at e).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scale(Vector256<float> dx, byte* e) => dx * Vector256.Create(*(float*)e);

    /// <summary>Q4_0 weight row x extended Q8_0 activation row; same bits as <see cref="VecDotAvx2.Q4_0"/>.</summary>
    public static float Q4_0(byte* x, byte* y, int n)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int ib = 0; ib < nb; ib++, x += Q4_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
            acc = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x)), e), Q4Lanes(Nibbles(x + 2), y, e), acc);
        return VecDotAvx2.HSum8(acc);
    }

    /// <summary>Q8_0 weight row x extended Q8_0 activation row; same bits as <see cref="VecDotAvx2.Q8_0"/>.</summary>
    public static float Q8_0(byte* x, byte* y, int n)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int ib = 0; ib < nb; ib++, x += Q8_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
        {
            Vector256<sbyte> qx = Avx.LoadVector256((sbyte*)(x + 2));
            acc = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x)), e), Q8Lanes(Avx2.Sign(qx, qx).AsByte(), qx, y), acc);
        }
        return VecDotAvx2.HSum8(acc);
    }

    /// <summary>Four tokens (activation rows y + k * yStride) at once; per token the same bits as <see cref="Q4_0(byte*, byte*, int)"/>.</summary>
    public static void Q4_0x4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, x += Q4_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
        {
            Vector256<float> dx = Vector256.Create(F16(x));
            Vector256<byte> nib = Nibbles(x + 2);
            a0 = Fma.MultiplyAdd(Scale(dx, e), Q4Lanes(nib, y, e), a0);
            a1 = Fma.MultiplyAdd(Scale(dx, e + s1), Q4Lanes(nib, y + s1, e + s1), a1);
            a2 = Fma.MultiplyAdd(Scale(dx, e + s2), Q4Lanes(nib, y + s2, e + s2), a2);
            a3 = Fma.MultiplyAdd(Scale(dx, e + s3), Q4Lanes(nib, y + s3, e + s3), a3);
        }
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
    }

    /// <summary>Four tokens at once; per token the same bits as <see cref="Q8_0(byte*, byte*, int)"/>.</summary>
    public static void Q8_0x4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, x += Q8_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
        {
            Vector256<float> dx = Vector256.Create(F16(x));
            Vector256<sbyte> qx = Avx.LoadVector256((sbyte*)(x + 2));
            Vector256<byte> ax = Avx2.Sign(qx, qx).AsByte();
            a0 = Fma.MultiplyAdd(Scale(dx, e), Q8Lanes(ax, qx, y), a0);
            a1 = Fma.MultiplyAdd(Scale(dx, e + s1), Q8Lanes(ax, qx, y + s1), a1);
            a2 = Fma.MultiplyAdd(Scale(dx, e + s2), Q8Lanes(ax, qx, y + s2), a2);
            a3 = Fma.MultiplyAdd(Scale(dx, e + s3), Q8Lanes(ax, qx, y + s3), a3);
        }
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
    }

    /// <summary>
    /// Four weight rows (x + k * xStride) against one token: result[k], per row the bits of
    /// <see cref="Q4_0(byte*, byte*, int)"/>. A single row's blocks form one FMA chain; for short rows (decode of a
    /// small model) that latency and the per-row call dominate, and four rows side by side hide both.
    /// </summary>
    public static void Q4_0Rows4(byte* x, nint xStride, byte* y, int n, float* result)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = xStride, s2 = 2 * xStride, s3 = 3 * xStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, x += Q4_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
        {
            a0 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x)), e), Q4Lanes(Nibbles(x + 2), y, e), a0);
            a1 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x + s1)), e), Q4Lanes(Nibbles(x + s1 + 2), y, e), a1);
            a2 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x + s2)), e), Q4Lanes(Nibbles(x + s2 + 2), y, e), a2);
            a3 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x + s3)), e), Q4Lanes(Nibbles(x + s3 + 2), y, e), a3);
        }
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
    }

    /// <summary>Four weight rows against one token; per row the bits of <see cref="Q8_0(byte*, byte*, int)"/>.</summary>
    public static void Q8_0Rows4(byte* x, nint xStride, byte* y, int n, float* result)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = xStride, s2 = 2 * xStride, s3 = 3 * xStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, x += Q8_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
        {
            Vector256<sbyte> q0 = Avx.LoadVector256((sbyte*)(x + 2)), q1 = Avx.LoadVector256((sbyte*)(x + s1 + 2));
            Vector256<sbyte> q2 = Avx.LoadVector256((sbyte*)(x + s2 + 2)), q3 = Avx.LoadVector256((sbyte*)(x + s3 + 2));
            a0 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x)), e), Q8Lanes(Avx2.Sign(q0, q0).AsByte(), q0, y), a0);
            a1 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x + s1)), e), Q8Lanes(Avx2.Sign(q1, q1).AsByte(), q1, y), a1);
            a2 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x + s2)), e), Q8Lanes(Avx2.Sign(q2, q2).AsByte(), q2, y), a2);
            a3 = Fma.MultiplyAdd(Scale(Vector256.Create(F16(x + s3)), e), Q8Lanes(Avx2.Sign(q3, q3).AsByte(), q3, y), a3);
        }
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
    }

    /// <summary>Eight tokens at once (the weight block decoded once for all); per token the bits of <see cref="Q4_0(byte*, byte*, int)"/>.</summary>
    public static void Q4_0x8(byte* x, byte* y, nint yStride, int n, float* result)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride, s4 = 4 * yStride, s5 = 5 * yStride, s6 = 6 * yStride, s7 = 7 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int ib = 0; ib < nb; ib++, x += Q4_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
        {
            Vector256<float> dx = Vector256.Create(F16(x));
            Vector256<byte> nib = Nibbles(x + 2);
            a0 = Fma.MultiplyAdd(Scale(dx, e), Q4Lanes(nib, y, e), a0);
            a1 = Fma.MultiplyAdd(Scale(dx, e + s1), Q4Lanes(nib, y + s1, e + s1), a1);
            a2 = Fma.MultiplyAdd(Scale(dx, e + s2), Q4Lanes(nib, y + s2, e + s2), a2);
            a3 = Fma.MultiplyAdd(Scale(dx, e + s3), Q4Lanes(nib, y + s3, e + s3), a3);
            a4 = Fma.MultiplyAdd(Scale(dx, e + s4), Q4Lanes(nib, y + s4, e + s4), a4);
            a5 = Fma.MultiplyAdd(Scale(dx, e + s5), Q4Lanes(nib, y + s5, e + s5), a5);
            a6 = Fma.MultiplyAdd(Scale(dx, e + s6), Q4Lanes(nib, y + s6, e + s6), a6);
            a7 = Fma.MultiplyAdd(Scale(dx, e + s7), Q4Lanes(nib, y + s7, e + s7), a7);
        }
        Store8(result, a0, a1, a2, a3, a4, a5, a6, a7);
    }

    /// <summary>Eight tokens at once; per token the bits of <see cref="Q8_0(byte*, byte*, int)"/>.</summary>
    public static void Q8_0x8(byte* x, byte* y, nint yStride, int n, float* result)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride, s4 = 4 * yStride, s5 = 5 * yStride, s6 = 6 * yStride, s7 = 7 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int ib = 0; ib < nb; ib++, x += Q8_0Bytes, y += Q8_0Bytes, e += ExtraBlock)
        {
            Vector256<float> dx = Vector256.Create(F16(x));
            Vector256<sbyte> qx = Avx.LoadVector256((sbyte*)(x + 2));
            Vector256<byte> ax = Avx2.Sign(qx, qx).AsByte();
            a0 = Fma.MultiplyAdd(Scale(dx, e), Q8Lanes(ax, qx, y), a0);
            a1 = Fma.MultiplyAdd(Scale(dx, e + s1), Q8Lanes(ax, qx, y + s1), a1);
            a2 = Fma.MultiplyAdd(Scale(dx, e + s2), Q8Lanes(ax, qx, y + s2), a2);
            a3 = Fma.MultiplyAdd(Scale(dx, e + s3), Q8Lanes(ax, qx, y + s3), a3);
            a4 = Fma.MultiplyAdd(Scale(dx, e + s4), Q8Lanes(ax, qx, y + s4), a4);
            a5 = Fma.MultiplyAdd(Scale(dx, e + s5), Q8Lanes(ax, qx, y + s5), a5);
            a6 = Fma.MultiplyAdd(Scale(dx, e + s6), Q8Lanes(ax, qx, y + s6), a6);
            a7 = Fma.MultiplyAdd(Scale(dx, e + s7), Q8Lanes(ax, qx, y + s7), a7);
        }
        Store8(result, a0, a1, a2, a3, a4, a5, a6, a7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store8(float* result, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7)
    {
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
        result[4] = VecDotAvx2.HSum8(a4);
        result[5] = VecDotAvx2.HSum8(a5);
        result[6] = VecDotAvx2.HSum8(a6);
        result[7] = VecDotAvx2.HSum8(a7);
    }
}
