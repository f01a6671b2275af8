using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// The F16 and BF16 weight kernels of the AVX2 paths (<see cref="KernelPath.Avx2"/>, <see cref="KernelPath.Avx2Vnni"/>)
/// for products over several tokens (prefill), as <see cref="VecDotAvx512Widened"/> is for AVX-512: a work item's
/// weight rows are widened to floats once (<see cref="WidenedRows"/>; F16 scaled down by 2^-112, its activation rows
/// scaled up by as much: <see cref="VecDotAvx2F16"/>), then three of them meet four activation rows at a time (F16:
/// rows widened by <see cref="VecDotAvx2F16.Widen"/>; BF16: BF16 rows, widened by a shift as they are loaded). The
/// single-row dots (<see cref="VecDotAvx2F16.Dot"/>, <see cref="VecDotAvx2.DotBF16"/>) keep four chains of eight lanes
/// over the chunks at 32j + 8k; here the chains run one after the other, twelve accumulators each (three rows by four
/// tokens), and end in the dot's own reduction, so every result has its bits. (Two rows by four ran 4-16% slower per
/// multiply-add in `bench widened`: eight FMAs to six loads instead of twelve to seven.) Before, the F16 kernel
/// converted each weight vector with seven integer instructions for every four tokens, and BF16 ran one row and one
/// token at a time, converting both operands.
/// </summary>
internal static unsafe class VecDotAvx2Widened
{
    // Columns per pass, so the three weight rows' and four activation rows' parts stay in L1 while the four chains run
    // over them one after the other (rows of a 2048-wide matrix would not fit whole).
    private const int ColumnBlock = 1024;

    /// <summary>F16: three widened weight rows by four widened activation rows (<see cref="Dot3x4{T}"/>).</summary>
    public static void Dot3x4F16(float* w, int stride, byte* y, nint yStride, int n, float* result) => Dot3x4<F16>(w, stride, y, yStride, n, result);

    /// <summary>BF16: three widened weight rows by four BF16 activation rows (<see cref="Dot3x4{T}"/>).</summary>
    public static void Dot3x4BF16(float* w, int stride, byte* y, nint yStride, int n, float* result) => Dot3x4<BF16>(w, stride, y, yStride, n, result);

    /// <summary>
    /// Three widened weight rows (<paramref name="stride"/> floats apart) times four activation rows
    /// (<paramref name="yStride"/> bytes apart) over <paramref name="n"/> columns: result[4 * row + token].
    /// </summary>
    [SkipLocalsInit] // part is zeroed below before it is read
    private static void Dot3x4<T>(float* w, int stride, byte* y, nint yStride, int n, float* result) where T : IWidenedType
    {
        int np = n & ~31;
        Vector256<float>* part = stackalloc Vector256<float>[48]; // [chain * 12 + row * 4 + token]
        for (int j = 0; j < 48; j++) part[j] = default;
        float* w0 = w, w1 = w + stride, w2 = w + 2 * stride;
        byte* y0 = y, y1 = y + yStride, y2 = y + 2 * yStride, y3 = y + 3 * yStride;
        for (int c0 = 0; c0 < np; c0 += ColumnBlock)
        {
            int c1 = Math.Min(np, c0 + ColumnBlock);
            for (int k = 0; k < 4; k++) Accumulate<T>(w0, w1, w2, y0, y1, y2, y3, c0 + 8 * k, c1, part + 12 * k);
        }
        for (int j = 0; j < 12; j++)
        {
            float* wr = w + (j >> 2) * stride;
            byte* a = y + (j & 3) * yStride;
            double sum = T.Reduce(part[j], part[12 + j], part[24 + j], part[36 + j]);
            for (int i = np; i < n; i++) sum += wr[i] * T.Activation(a, i);
            result[j] = (float)sum;
        }
    }

    /// <summary>
    /// One chain over columns [from, to) in steps of 32: twelve accumulators, one per (row, token), with the three
    /// weight vectors and one activation vector: the sixteen registers AVX2 has.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate<T>(float* w0, float* w1, float* w2, byte* y0, byte* y1, byte* y2, byte* y3, int from, int to,
        Vector256<float>* p) where T : IWidenedType
    {
        Vector256<float> a0 = p[0], a1 = p[1], a2 = p[2], a3 = p[3];
        Vector256<float> b0 = p[4], b1 = p[5], b2 = p[6], b3 = p[7];
        Vector256<float> c0 = p[8], c1 = p[9], c2 = p[10], c3 = p[11];
        for (int i = from; i < to; i += 32)
        {
            Vector256<float> u = Avx.LoadVector256(w0 + i), v = Avx.LoadVector256(w1 + i), s = Avx.LoadVector256(w2 + i);
            Vector256<float> t = T.LoadActivation(y0, i);
            a0 = Fma.MultiplyAdd(u, t, a0);
            b0 = Fma.MultiplyAdd(v, t, b0);
            c0 = Fma.MultiplyAdd(s, t, c0);
            t = T.LoadActivation(y1, i);
            a1 = Fma.MultiplyAdd(u, t, a1);
            b1 = Fma.MultiplyAdd(v, t, b1);
            c1 = Fma.MultiplyAdd(s, t, c1);
            t = T.LoadActivation(y2, i);
            a2 = Fma.MultiplyAdd(u, t, a2);
            b2 = Fma.MultiplyAdd(v, t, b2);
            c2 = Fma.MultiplyAdd(s, t, c2);
            t = T.LoadActivation(y3, i);
            a3 = Fma.MultiplyAdd(u, t, a3);
            b3 = Fma.MultiplyAdd(v, t, b3);
            c3 = Fma.MultiplyAdd(s, t, c3);
        }
        p[0] = a0; p[1] = a1; p[2] = a2; p[3] = a3;
        p[4] = b0; p[5] = b1; p[6] = b2; p[7] = b3;
        p[8] = c0; p[9] = c1; p[10] = c2; p[11] = c3;
    }

    /// <summary>What differs between the widened types' kernels: how an activation row is read and how a dot's chains end.</summary>
    private interface IWidenedType
    {
        /// <summary>Eight activations at column <paramref name="i"/> of a row, as floats.</summary>
        static abstract Vector256<float> LoadActivation(byte* row, int i);

        /// <summary>One activation, for the columns past the last 32.</summary>
        static abstract float Activation(byte* row, int i);

        /// <summary>The single-row dot's reduction of its four chains.</summary>
        static abstract float Reduce(Vector256<float> c0, Vector256<float> c1, Vector256<float> c2, Vector256<float> c3);
    }

    /// <summary>F16: activation rows already widened to floats; ggml's GGML_F32x8_REDUCE.</summary>
    private readonly struct F16 : IWidenedType
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> LoadActivation(byte* row, int i) => Avx.LoadVector256((float*)row + i);

        public static float Activation(byte* row, int i) => ((float*)row)[i];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Reduce(Vector256<float> c0, Vector256<float> c1, Vector256<float> c2, Vector256<float> c3) => VecDotAvx2.Reduce4(c0, c1, c2, c3);
    }

    /// <summary>BF16: activation rows of BF16, widened by a shift as loaded; <see cref="VecDotAvx2.DotBF16"/>'s reduction.</summary>
    private readonly struct BF16 : IWidenedType
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> LoadActivation(byte* row, int i) => VecDotAvx2.BF16ToSingle((ushort*)row + i);

        public static float Activation(byte* row, int i) => BF16ToFloat(((ushort*)row)[i]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Reduce(Vector256<float> c0, Vector256<float> c1, Vector256<float> c2, Vector256<float> c3)
            => VecDotAvx2.HSum8(Avx.Add(Avx.Add(c0, c2), Avx.Add(c1, c3)));
    }
}
