using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// The F16 one-token (decode) kernel of <see cref="KernelPath.Avx512"/>: a weight row times an activation row that was
/// rounded to F16 and widened back (<see cref="VecDotAvx2F16.Widen"/>), with the bits of <see cref="VecDotAvx2F16.Dot"/>.
/// Decode of an F16 model is bound by widening its weights, not by reading them: .NET exposes no F16 conversion, and
/// <see cref="VecDotAvx2.HalfToSingle(ushort*)"/> takes nine instructions per eight halves beside one FMA (`small` F16
/// decoded at about half its bandwidth bound). <see cref="FiniteHalfToSingle"/> widens sixteen halves in five, one of
/// them ternary logic that AVX2 lacks, and one max per vector finds the rare infinity or NaN that it does not widen.
/// </summary>
internal static unsafe class VecDotAvx512F16
{
    /// <summary>
    /// Sixteen finite halves widened exactly to floats, the bits of <see cref="VecDotAvx2.HalfToSingle(ushort*)"/>.
    /// Sign-extended and shifted left by 13, a half's exponent and mantissa sit where a float's low exponent bits and
    /// mantissa are (<paramref name="magnitude"/>); multiplying by 2^112 rebiases the exponent, exactly, subnormal
    /// halves included (they are subnormal floats there), and the sign bit is the sign-extended half's bit 31. An
    /// infinity or NaN (exponent 31) comes out finite: its magnitude is above <see cref="LargestFiniteMagnitude"/>,
    /// which the caller checks once per row rather than mending every vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> FiniteHalfToSingle(ushort* p, out Vector512<uint> magnitude)
    {
        Vector512<int> shifted = Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Avx.LoadVector256((short*)p)), 13);
        magnitude = Avx512F.And(shifted, Vector512.Create(0x0FFFE000)).AsUInt32();
        Vector512<float> scaled = Avx512F.Multiply(magnitude.AsSingle(), Vector512.Create(5.192297e33f /* 2^112 */));
        // 0xF8: A | (B & C).
        return Avx512F.TernaryLogic(scaled.AsInt32(), shifted, Vector512.Create(int.MinValue), 0xF8).AsSingle();
    }

    /// <summary>The largest <see cref="FiniteHalfToSingle"/> magnitude of a finite half (65504: exponent 30, mantissa all ones).</summary>
    internal const uint LargestFiniteMagnitude = 0x0F7FE000;

    /// <summary>
    /// F16 weight row x widened activation row. The AVX2 dot's four 8-lane chains (chunks at 32j + 8k) are two 512-bit
    /// ones here, chunks 32j and 32j + 16, each lane summing the same products in the same order; the same reduction
    /// of their halves gives the same float. A row holding an infinity or NaN, which <see cref="FiniteHalfToSingle"/>
    /// does not widen as such, is done again by the AVX2 dot (one max per vector finds it: cheaper than mending each).
    /// </summary>
    public static float Dot(byte* w, byte* a, int n)
    {
        ushort* x = (ushort*)w;
        float* y = (float*)a;
        Vector512<float> low = default, high = default;
        Vector512<uint> largest = default;
        int np = n & ~31;
        for (int i = 0; i < np; i += 32)
        {
            low = Avx512F.FusedMultiplyAdd(FiniteHalfToSingle(x + i, out var m0), Avx512F.LoadVector512(y + i), low);
            high = Avx512F.FusedMultiplyAdd(FiniteHalfToSingle(x + i + 16, out var m1), Avx512F.LoadVector512(y + i + 16), high);
            largest = Avx512F.Max(largest, Avx512F.Max(m0, m1));
        }
        if (Vector512.GreaterThanAny(largest, Vector512.Create(LargestFiniteMagnitude))) return VecDotAvx2F16.Dot(w, a, n);
        double sum = VecDotAvx2.Reduce4(low.GetLower(), low.GetUpper(), high.GetLower(), high.GetUpper());
        for (int i = np; i < n; i++) sum += HalfToFloat(x[i]) * y[i];
        return (float)sum;
    }
}
