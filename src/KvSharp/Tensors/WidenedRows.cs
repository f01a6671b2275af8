using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// A work item's F16 or BF16 weight rows widened exactly to floats once, for the kernels that then meet them with
/// several tokens' activations (<see cref="VecDotAvx512Widened"/>, <see cref="VecDotAvx2Widened"/>): .NET exposes no F16
/// conversion, so converting in the kernel costs integer instructions for every few tokens.
/// </summary>
internal static unsafe class WidenedRows
{
    /// <summary>
    /// Rows per work item where F16 and BF16 products run on widened rows on AVX-512: their widened copy (16 x cols x 4
    /// bytes: 48 KiB for 768 columns, 1.2 MiB for 18,944) is read again for every eight tokens. 8 to 64 rows measured
    /// alike on `small`.
    /// </summary>
    public const int RowTileAvx512 = 16;

    /// <summary>The same on AVX2, whose kernel takes rows in threes.</summary>
    public const int RowTileAvx2 = 24;

    // Each thread's widened rows (pinned, so the kernels take pointers), grown to the largest work item met.
    [ThreadStatic] private static float[]? t_widened;

    /// <summary>
    /// Floats from one widened row to the next: the columns rounded up to a cache line, so that every row starts on
    /// one and no full-width load of the kernels is split over two lines (misaligned rows cost the F16 kernels 10-15%).
    /// </summary>
    public static int Stride(int cols) => (cols + 15) & ~15;

    /// <summary>
    /// <paramref name="rows"/> F16 or BF16 (<paramref name="bf16"/>) rows of <paramref name="cols"/>
    /// (<paramref name="stride"/> bytes apart) widened exactly to floats, <see cref="Stride"/> floats apart, in this
    /// thread's buffer: valid until this thread's next call. F16 rows go through
    /// <see cref="HalfConvert.ToSingle(ref Half, ref float, int)"/>, the cache's widening (a NaN comes out quiet, which
    /// the kernels' arithmetic would make it anyway), or, <paramref name="scaledDown"/>, are their values x 2^-112 (the
    /// AVX2 paths, whose F16 activations are scaled up as much: <see cref="VecDotAvx2F16"/>).
    /// </summary>
    public static float* Widen(byte* w, nint stride, int rows, int cols, bool bf16, bool scaledDown = false)
    {
        int to = Stride(cols);
        long needed = (long)rows * to + 16;
        if (t_widened == null || t_widened.Length < needed) t_widened = GC.AllocateUninitializedArray<float>(checked((int)needed), pinned: true);
        float* first = (float*)(((nint)Unsafe.AsPointer(ref t_widened[0]) + 63) & ~(nint)63);
        for (int r = 0; r < rows; r++)
        {
            ushort* from = (ushort*)(w + r * stride);
            float* row = first + (long)r * to;
            if (bf16) WidenBF16(from, row, cols);
            else if (scaledDown) WidenF16ScaledDown(from, row, cols);
            else HalfConvert.ToSingle(ref *(Half*)from, ref *row, cols);
        }
        return first;
    }

    /// <summary>F16 rows as their values x 2^-112, exactly: a half's bits placed in a float.</summary>
    private static void WidenF16ScaledDown(ushort* from, float* row, int cols)
    {
        int i = 0;
        for (; i + 16 <= cols; i += 16)
        {
            HalfConvert.Widen16ScaledDown(HalfConvert.InUnpackOrder(Avx.LoadVector256(from + i)), out Vector256<float> low, out Vector256<float> high);
            Avx.Store(row + i, low);
            Avx.Store(row + i + 8, high);
        }
        for (; i < cols; i++) row[i] = HalfToFloat(from[i]) * HalfConvert.TwoToMinus112;
    }

    /// <summary>
    /// BF16 to float is a shift into the upper half. In 256-bit vectors on every path (the AVX2 ones too): reading the
    /// rows from memory, not the shifts, is what this costs (AVX-512 F16 widening in five instructions per sixteen
    /// halves instead of <see cref="HalfConvert"/>'s nine measured the same).
    /// </summary>
    private static void WidenBF16(ushort* from, float* row, int cols)
    {
        int i = 0;
        if (Avx2.IsSupported)
            for (; i + 8 <= cols; i += 8) Avx.Store(row + i, VecDotAvx2.BF16ToSingle(from + i));
        for (; i < cols; i++) row[i] = BF16ToFloat(from[i]);
    }
}
