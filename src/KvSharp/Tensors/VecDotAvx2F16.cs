using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// F16 weight kernels for <see cref="MatMul"/> over activation rows that were rounded to F16 (as ggml does) and then
/// widened back to F32 once per row (<see cref="Widen"/>): the widening is exact, so a kernel converts only the
/// weights and gets the bits of <see cref="VecDotAvx2.DotF16"/>, which converts both operands on every row.
/// <para>
/// The AVX2 paths keep their activation rows scaled up by 2^112 and widen the weights scaled down by as much
/// (<see cref="DotScaled"/>): a half's bits placed in a float are its value x 2^-112, exactly, in nine instructions
/// per sixteen halves (<see cref="HalfConvert.Widen16ScaledDown"/>) where the exact widening takes eighteen. Both
/// factors are exact (an F16 activation is at most 65504, so x 2^112 stays below 2^128; a half x 2^-112 is at least
/// 2^-136, a float subnormal with room for its ten bits), so each FMA sees the same real product w x a and rounds it
/// the same way: every chain holds the same floats, and every result has the same bits.
/// </para>
/// </summary>
internal static unsafe class VecDotAvx2F16
{
    /// <summary>Activation bytes per row: the F16 values held as floats.</summary>
    public static int RowBytes(int cols) => cols * sizeof(float);

    /// <summary>
    /// Rounds <paramref name="x"/> to F16 and stores the values as floats at <paramref name="row"/>
    /// (<see cref="RowBytes"/> bytes). The halves are written to the upper half of the row first and widened in
    /// place front to back: the floats of chunk i end at 4(i+8) &lt;= 2·cols + 2i, where unread halves start.
    /// </summary>
    public static void Widen(ReadOnlySpan<float> x, byte* row, bool scaledUp = false)
    {
        int n = x.Length;
        ushort* halves = (ushort*)(row + 2 * n);
        HalfConvert.ToHalf(x, new Span<ushort>(halves, n));
        float* f = (float*)row;
        int i = 0;
        float scale = scaledUp ? HalfConvert.TwoTo112 : 1f;
        for (; i + 8 <= n; i += 8)
        {
            Vector256<float> v = VecDotAvx2.HalfToSingle(halves + i);
            Avx.Store(f + i, v * scale);
        }
        for (; i < n; i++) f[i] = HalfToFloat(halves[i]) * scale;
    }

    /// <summary>F16 weight row x widened activation row; the bits of <see cref="VecDotAvx2.DotF16"/>.</summary>
    public static float Dot(byte* w, byte* a, int n)
    {
        ushort* x = (ushort*)w;
        float* y = (float*)a;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int np = n & ~31;
        for (int i = 0; i < np; i += 32)
        {
            a0 = Fma.MultiplyAdd(VecDotAvx2.HalfToSingle(x + i), Avx.LoadVector256(y + i), a0);
            a1 = Fma.MultiplyAdd(VecDotAvx2.HalfToSingle(x + i + 8), Avx.LoadVector256(y + i + 8), a1);
            a2 = Fma.MultiplyAdd(VecDotAvx2.HalfToSingle(x + i + 16), Avx.LoadVector256(y + i + 16), a2);
            a3 = Fma.MultiplyAdd(VecDotAvx2.HalfToSingle(x + i + 24), Avx.LoadVector256(y + i + 24), a3);
        }
        double sum = VecDotAvx2.Reduce4(a0, a1, a2, a3);
        for (int i = np; i < n; i++) sum += HalfToFloat(x[i]) * y[i];
        return (float)sum;
    }

    /// <summary>
    /// F16 weight row x activation row widened scaled up (<see cref="Widen"/> with scaledUp): the weights widened scaled
    /// down, sixteen at a time; the bits of <see cref="Dot"/> over the unscaled row.
    /// </summary>
    public static float DotScaled(byte* w, byte* a, int n)
    {
        ushort* x = (ushort*)w;
        float* y = (float*)a;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int np = n & ~31;
        for (int i = 0; i < np; i += 32)
        {
            HalfConvert.Widen16ScaledDown(HalfConvert.InUnpackOrder(Avx.LoadVector256(x + i)), out Vector256<float> w0, out Vector256<float> w1);
            HalfConvert.Widen16ScaledDown(HalfConvert.InUnpackOrder(Avx.LoadVector256(x + i + 16)), out Vector256<float> w2, out Vector256<float> w3);
            a0 = Fma.MultiplyAdd(w0, Avx.LoadVector256(y + i), a0);
            a1 = Fma.MultiplyAdd(w1, Avx.LoadVector256(y + i + 8), a1);
            a2 = Fma.MultiplyAdd(w2, Avx.LoadVector256(y + i + 16), a2);
            a3 = Fma.MultiplyAdd(w3, Avx.LoadVector256(y + i + 24), a3);
        }
        double sum = VecDotAvx2.Reduce4(a0, a1, a2, a3);
        // The scaled-down weight is exact, so its product with the scaled-up activation rounds as w x a does.
        for (int i = np; i < n; i++) sum += HalfToFloat(x[i]) * HalfConvert.TwoToMinus112 * y[i];
        return (float)sum;
    }
}
