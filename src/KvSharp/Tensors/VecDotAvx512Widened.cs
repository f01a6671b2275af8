using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// The F16 and BF16 weight kernels of <see cref="KernelPath.Avx512"/> for products over several tokens (prefill): a
/// work item's weight rows are widened to floats once (<see cref="WidenedRows"/>: exact), then four of them meet four
/// activation rows at a time (F16: rows widened by <see cref="VecDotAvx2F16.Widen"/>; BF16: BF16 rows, widened as they
/// are loaded, a shift), each result the bits of <see cref="VecDotAvx2F16.Dot"/> or <see cref="VecDotAvx2.DotBF16"/>.
/// That dot keeps four chains of eight lanes over the chunks at 32j + 8k; a 512-bit vector at 32j + 16m holds chains
/// 2m and 2m + 1 side by side, each lane summing the same products in the same order, so its halves are the AVX2 chains
/// and the same reduction gives the same float. Widening in the kernel instead (.NET exposes no F16 conversion, so it
/// takes seven integer instructions a vector) cost more than the FMAs it fed: 615 tokens/s of prefill on `small` F16
/// against 430 on AVX2, where widening once per work item gives 676-754 (docs/benchmarks.md, "Twenty-third session").
/// BF16 keeps its own dot's order the same way; only the activations' loads and the final reduction differ
/// (<see cref="IWidenedType"/>).
/// </summary>
internal static unsafe class VecDotAvx512Widened
{
    // Columns per pass, so the four weight rows' and four activation rows' parts stay in L1 (48 KiB on Zen 5: 16 KiB of
    // each) while both 512-bit chains run over them one after the other.
    private const int ColumnBlock = 1024;

    /// <summary>F16: four widened weight rows by four widened activation rows (<see cref="Dot4x4{T}"/>).</summary>
    public static void Dot4x4F16(float* w, int stride, byte* y, nint yStride, int n, float* result) => Dot4x4<F16>(w, stride, y, yStride, n, result);

    /// <summary>BF16: four widened weight rows by four BF16 activation rows (<see cref="Dot4x4{T}"/>).</summary>
    public static void Dot4x4BF16(float* w, int stride, byte* y, nint yStride, int n, float* result) => Dot4x4<BF16>(w, stride, y, yStride, n, result);

    /// <summary>
    /// Four widened weight rows (<paramref name="stride"/> floats apart) times four activation rows
    /// (<paramref name="yStride"/> bytes apart) over <paramref name="n"/> columns: result[4 * row + token].
    /// </summary>
    [SkipLocalsInit] // part is zeroed below, and only the 32 vectors used
    private static void Dot4x4<T>(float* w, int stride, byte* y, nint yStride, int n, float* result) where T : IWidenedType
    {
        int np = n & ~31;
        // [m][row * 4 + token]: chain pair m (chains 2m, 2m + 1) of each output.
        // 64-byte aligned: a 512-bit store that crosses a cache line is split, and its value cannot be forwarded to the
        // next pass's load (a 256-column call took 119 ns unaligned, 95 aligned; 768 columns alike).
        byte* space = stackalloc byte[33 * 64];
        Vector512<float>* part = (Vector512<float>*)(((nint)space + 63) & ~(nint)63);
        for (int j = 0; j < 32; j++) part[j] = default;
        float* w0 = w, w1 = w + stride, w2 = w + 2 * stride, w3 = w + 3 * stride;
        byte* y0 = y, y1 = y + yStride, y2 = y + 2 * yStride, y3 = y + 3 * yStride;
        for (int c0 = 0; c0 < np; c0 += ColumnBlock)
        {
            int c1 = Math.Min(np, c0 + ColumnBlock);
            for (int m = 0; m < 2; m++) Accumulate<T>(w0, w1, w2, w3, y0, y1, y2, y3, c0 + 16 * m, c1, part + 16 * m);
        }
        Reduce16<T>(part, result);
        if (np == n) return;
        for (int j = 0; j < 16; j++)
        {
            double sum = result[j];
            float* wr = w + (j >> 2) * stride;
            byte* a = y + (j & 3) * yStride;
            for (int i = np; i < n; i++) sum += wr[i] * T.Activation(a, i);
            result[j] = (float)sum;
        }
    }

    /// <summary>
    /// The sixteen outputs' reductions side by side, each lane doing what the single-row dot's reduction does to one
    /// output, in the same order (so the same float): part[j] + part[16 + j] is (c0 + c2 | c1 + c3), its halves added
    /// give the eight sums s; then t = s[0..3] + s[4..7], and the type's last two steps (F16: (t0 + t1) + (t2 + t3), as
    /// two horizontal adds; BF16: (t0 + t2) + (t1 + t3)). Vectors are merged at each step by shuffles: about 60
    /// instructions for all sixteen where each output's own reduction took about 14, a chain of dependent horizontal
    /// adds. A 768-column call from L1 and L2 took 204 ns against 220 (1 thread, 2-core Zen 5).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Reduce16<T>(Vector512<float>* part, float* result) where T : IWidenedType
    {
        // t[k]: 128-bit lane L holds output 4k + L's t0..t3.
        Vector512<float> t0 = Tees(Sums(part, 0), Sums(part, 2)), t1 = Tees(Sums(part, 4), Sums(part, 6));
        Vector512<float> t2 = Tees(Sums(part, 8), Sums(part, 10)), t3 = Tees(Sums(part, 12), Sums(part, 14));
        // u: lane L holds the last step's two operands of output L and 4 + L (u0), of 8 + L and 12 + L (u1).
        Vector512<float> u0, u1;
        if (typeof(T) == typeof(F16))
        {
            u0 = Avx512F.Shuffle(t0, t1, 0x88) + Avx512F.Shuffle(t0, t1, 0xDD);
            u1 = Avx512F.Shuffle(t2, t3, 0x88) + Avx512F.Shuffle(t2, t3, 0xDD);
        }
        else
        {
            u0 = Avx512F.Shuffle(t0, t1, 0x44) + Avx512F.Shuffle(t0, t1, 0xEE);
            u1 = Avx512F.Shuffle(t2, t3, 0x44) + Avx512F.Shuffle(t2, t3, 0xEE);
        }
        // Lane L, element e: output 4e + L; put output j at j.
        Vector512<float> r = Avx512F.Shuffle(u0, u1, 0x88) + Avx512F.Shuffle(u0, u1, 0xDD);
        Avx512F.Store(result, Avx512F.PermuteVar16x32(r, Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)));
    }

    /// <summary>Outputs j (low 256 bits) and j + 1 (high): each its eight sums s = (c0 + c2) + (c1 + c3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Sums(Vector512<float>* part, int j)
    {
        Vector512<float> a = part[j] + part[16 + j], b = part[j + 1] + part[17 + j];
        return Avx512F.Shuffle4x128(a, b, 0x44) + Avx512F.Shuffle4x128(a, b, 0xEE);
    }

    /// <summary>Two outputs' pairs of 128-bit sum halves (s[0..3], s[4..7] each) to four outputs' t = s[0..3] + s[4..7].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Tees(Vector512<float> a, Vector512<float> b) => Avx512F.Shuffle4x128(a, b, 0x88) + Avx512F.Shuffle4x128(a, b, 0xDD);

    /// <summary>One chain pair over columns [from, to) in steps of 32: sixteen accumulators, one per (row, token).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate<T>(float* w0, float* w1, float* w2, float* w3, byte* y0, byte* y1, byte* y2, byte* y3, int from, int to,
        Vector512<float>* p) where T : IWidenedType
    {
        Vector512<float> a00 = p[0], a01 = p[1], a02 = p[2], a03 = p[3];
        Vector512<float> a10 = p[4], a11 = p[5], a12 = p[6], a13 = p[7];
        Vector512<float> a20 = p[8], a21 = p[9], a22 = p[10], a23 = p[11];
        Vector512<float> a30 = p[12], a31 = p[13], a32 = p[14], a33 = p[15];
        for (int i = from; i < to; i += 32)
        {
            Vector512<float> u0 = Avx512F.LoadVector512(w0 + i), u1 = Avx512F.LoadVector512(w1 + i), u2 = Avx512F.LoadVector512(w2 + i), u3 = Avx512F.LoadVector512(w3 + i);
            Vector512<float> t = T.LoadActivation(y0, i);
            a00 = Avx512F.FusedMultiplyAdd(u0, t, a00);
            a10 = Avx512F.FusedMultiplyAdd(u1, t, a10);
            a20 = Avx512F.FusedMultiplyAdd(u2, t, a20);
            a30 = Avx512F.FusedMultiplyAdd(u3, t, a30);
            t = T.LoadActivation(y1, i);
            a01 = Avx512F.FusedMultiplyAdd(u0, t, a01);
            a11 = Avx512F.FusedMultiplyAdd(u1, t, a11);
            a21 = Avx512F.FusedMultiplyAdd(u2, t, a21);
            a31 = Avx512F.FusedMultiplyAdd(u3, t, a31);
            t = T.LoadActivation(y2, i);
            a02 = Avx512F.FusedMultiplyAdd(u0, t, a02);
            a12 = Avx512F.FusedMultiplyAdd(u1, t, a12);
            a22 = Avx512F.FusedMultiplyAdd(u2, t, a22);
            a32 = Avx512F.FusedMultiplyAdd(u3, t, a32);
            t = T.LoadActivation(y3, i);
            a03 = Avx512F.FusedMultiplyAdd(u0, t, a03);
            a13 = Avx512F.FusedMultiplyAdd(u1, t, a13);
            a23 = Avx512F.FusedMultiplyAdd(u2, t, a23);
            a33 = Avx512F.FusedMultiplyAdd(u3, t, a33);
        }
        p[0] = a00; p[1] = a01; p[2] = a02; p[3] = a03;
        p[4] = a10; p[5] = a11; p[6] = a12; p[7] = a13;
        p[8] = a20; p[9] = a21; p[10] = a22; p[11] = a23;
        p[12] = a30; p[13] = a31; p[14] = a32; p[15] = a33;
    }

    /// <summary>What differs between the widened types' kernels: how an activation row is read and how a dot's chains end.</summary>
    private interface IWidenedType
    {
        /// <summary>Sixteen activations at column <paramref name="i"/> of a row, as floats.</summary>
        static abstract Vector512<float> LoadActivation(byte* row, int i);

        /// <summary>One activation, for the columns past the last 32.</summary>
        static abstract float Activation(byte* row, int i);
    }

    /// <summary>F16: activation rows already widened to floats; ggml's GGML_F32x8_REDUCE.</summary>
    private readonly struct F16 : IWidenedType
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> LoadActivation(byte* row, int i) => Avx512F.LoadVector512((float*)row + i);

        public static float Activation(byte* row, int i) => ((float*)row)[i];
    }

    /// <summary>BF16: activation rows of BF16, widened by a shift as loaded; <see cref="VecDotAvx2.DotBF16"/>'s reduction.</summary>
    private readonly struct BF16 : IWidenedType
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load(ushort* p) => Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Avx.LoadVector256(p)), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> LoadActivation(byte* row, int i) => Load((ushort*)row + i);

        public static float Activation(byte* row, int i) => BF16ToFloat(((ushort*)row)[i]);
    }
}
