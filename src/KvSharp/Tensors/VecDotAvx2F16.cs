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

    /// <summary>
    /// The body of <see cref="Dot2x4"/>: part[k * 8 + row * 4 + token] gets accumulator chain k of
    /// the single-row dot (chunks at 32j + 8k, increasing j) over columns [0, np). Those four chains never mix before
    /// the final reduction, so they run one after the other (pass k strides over the row), which needs only one
    /// accumulator per (row, token) at a time: 8 independent FMA chains sharing each weight load 4 times and each
    /// activation load twice.
    /// </summary>
    private static void Accumulate2x4(ushort* w0, ushort* w1, float* y0, float* y1, float* y2, float* y3, int np,
        Vector256<float>* part)
    {
        for (int j = 0; j < 32; j++) part[j] = default;
        // Column blocks keep the six rows' active parts in L1 (rows of a 2048-wide matrix would not fit whole).
        for (int c0 = 0; c0 < np; c0 += ColumnBlock)
        {
            int c1 = Math.Min(np, c0 + ColumnBlock);
            for (int k = 0; k < 32; k += 8)
            {
                Vector256<float>* p = part + k;
                Vector256<float> a0 = p[0], a1 = p[1], a2 = p[2], a3 = p[3];
                Vector256<float> b0 = p[4], b1 = p[5], b2 = p[6], b3 = p[7];
                for (int i = c0 + k; i < c1; i += 32)
                {
                    Vector256<float> u = VecDotAvx2.HalfToSingle(w0 + i), v = VecDotAvx2.HalfToSingle(w1 + i);
                    Vector256<float> t = Avx.LoadVector256(y0 + i);
                    a0 = Fma.MultiplyAdd(u, t, a0);
                    b0 = Fma.MultiplyAdd(v, t, b0);
                    t = Avx.LoadVector256(y1 + i);
                    a1 = Fma.MultiplyAdd(u, t, a1);
                    b1 = Fma.MultiplyAdd(v, t, b1);
                    t = Avx.LoadVector256(y2 + i);
                    a2 = Fma.MultiplyAdd(u, t, a2);
                    b2 = Fma.MultiplyAdd(v, t, b2);
                    t = Avx.LoadVector256(y3 + i);
                    a3 = Fma.MultiplyAdd(u, t, a3);
                    b3 = Fma.MultiplyAdd(v, t, b3);
                }
                p[0] = a0; p[1] = a1; p[2] = a2; p[3] = a3;
                p[4] = b0; p[5] = b1; p[6] = b2; p[7] = b3;
            }
        }
    }

    private const int ColumnBlock = 1024;

    /// <summary>
    /// Two F16 weight rows times four widened activation rows: result[4 * row + token], each the bits of
    /// <see cref="Dot"/>. DotF16's four accumulator chains run one after the other
    /// (<see cref="Accumulate2x4"/>), so each converted weight vector feeds four FMAs.
    /// </summary>
    public static void Dot2x4(byte* x, nint xStride, byte* y, nint yStride, int n, float* result)
    {
        ushort* w0 = (ushort*)x, w1 = (ushort*)(x + xStride);
        float* y0 = (float*)y, y1 = (float*)(y + yStride), y2 = (float*)(y + 2 * yStride), y3 = (float*)(y + 3 * yStride);
        int np = n & ~31;
        Vector256<float>* part = stackalloc Vector256<float>[32]; // [k][row * 4 + token]
        Accumulate2x4(w0, w1, y0, y1, y2, y3, np, part);
        for (int j = 0; j < 8; j++)
        {
            ushort* w = j < 4 ? w0 : w1;
            float* a = (j & 3) switch { 0 => y0, 1 => y1, 2 => y2, _ => y3 };
            double sum = VecDotAvx2.Reduce4(part[j], part[8 + j], part[16 + j], part[24 + j]);
            for (int i = np; i < n; i++) sum += HalfToFloat(w[i]) * a[i];
            result[j] = (float)sum;
        }
    }
}
