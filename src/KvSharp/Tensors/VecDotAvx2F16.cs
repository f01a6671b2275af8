using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// F16 weight kernels for <see cref="MatMul"/> over activation rows that were rounded to F16 (as ggml does) and then
/// widened back to F32 once per row (<see cref="Widen"/>): the widening is exact, so a kernel converts only the
/// weights and gets the bits of <see cref="VecDotAvx2.DotF16"/>, which converts both operands on every row.
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
    public static void Widen(ReadOnlySpan<float> x, byte* row)
    {
        int n = x.Length;
        ushort* halves = (ushort*)(row + 2 * n);
        HalfConvert.ToHalf(x, new Span<ushort>(halves, n));
        float* f = (float*)row;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            Vector256<float> v = VecDotAvx2.HalfToSingle(halves + i);
            Avx.Store(f + i, v);
        }
        for (; i < n; i++) f[i] = HalfToFloat(halves[i]);
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
}
