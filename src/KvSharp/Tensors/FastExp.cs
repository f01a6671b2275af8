using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// The vectorized expf ggml uses for silu and softmax on AVX2 (ggml_v_expf, adapted by ggml from ARM's optimized
/// routines: max error ~1.5 ulp, overflows to +inf above ~88.38, flushes to 0 below ~-103.97). Using the same
/// algorithm, not a correctly rounded exp, is what makes our activations match llama.cpp's bit for bit.
/// <see cref="Scalar"/> evaluates the identical sequence of roundings one lane at a time.
/// </summary>
internal static class FastExp
{
    private static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    private static readonly float R = F(0x4b400000);      // 0x1.8p23: adding it rounds to an integer
    private static readonly float Log2e = F(0x3fb8aa3b);  // 0x1.715476p+0
    private static readonly float Ln2Hi = F(0x3f317200);  // 0x1.62e4p-1
    private static readonly float Ln2Lo = F(0x35bfbe8e);  // 0x1.7f7d1cp-20
    private static readonly float C0 = F(0x3c072010), C1 = F(0x3d2b9f17), C2 = F(0x3e2aaf33), C3 = F(0x3efffedb), C4 = F(0x3f7ffff6);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Avx2Exp(Vector256<float> x)
    {
        Vector256<float> r = Vector256.Create(R);
        Vector256<float> z = Fma.MultiplyAdd(x, Vector256.Create(Log2e), r);
        Vector256<float> n = Avx.Subtract(z, r);
        Vector256<float> b = Fma.MultiplyAddNegated(n, Vector256.Create(Ln2Lo), Fma.MultiplyAddNegated(n, Vector256.Create(Ln2Hi), x));
        Vector256<int> e = Avx2.ShiftLeftLogical(z.AsInt32(), 23);
        Vector256<float> k = Avx2.Add(e, Vector256.Create(1f).AsInt32()).AsSingle();
        Vector256<float> absN = Avx.AndNot(Vector256.Create(-0f), n);
        Vector256<float> c = Avx.CompareGreaterThan(absN, Vector256.Create(126f));
        Vector256<float> u = Avx.Multiply(b, b);
        Vector256<float> j = Fma.MultiplyAdd(
            Fma.MultiplyAdd(Fma.MultiplyAdd(Vector256.Create(C0), b, Vector256.Create(C1)), u, Fma.MultiplyAdd(Vector256.Create(C2), b, Vector256.Create(C3))),
            u, Avx.Multiply(Vector256.Create(C4), b));
        if (Avx.MoveMask(c) == 0)
            return Fma.MultiplyAdd(j, k, k);
        Vector256<int> g = Avx2.And(Avx.CompareLessThanOrEqual(n, Vector256<float>.Zero).AsInt32(), Vector256.Create(unchecked((int)0x82000000u)));
        Vector256<float> s1 = Avx2.Add(g, Vector256.Create(0x7f000000)).AsSingle();
        Vector256<float> s2 = Avx2.Subtract(e, g).AsSingle();
        Vector256<float> d = Avx.CompareGreaterThan(absN, Vector256.Create(192f));
        return Avx.Or(
            Avx.And(d, Avx.Multiply(s1, s1)),
            Avx.AndNot(d, Avx.Or(
                Avx.And(c, Avx.Multiply(Fma.MultiplyAdd(s2, j, s2), s1)),
                Avx.AndNot(c, Fma.MultiplyAdd(k, j, k)))));
    }

    /// <summary>One lane of <see cref="Avx2Exp"/>.</summary>
    public static float Scalar(float x)
    {
        float z = MathF.FusedMultiplyAdd(x, Log2e, R);
        float n = z - R;
        float b = MathF.FusedMultiplyAdd(-n, Ln2Lo, MathF.FusedMultiplyAdd(-n, Ln2Hi, x));
        int e = BitConverter.SingleToInt32Bits(z) << 23;
        float k = BitConverter.Int32BitsToSingle(e + BitConverter.SingleToInt32Bits(1f));
        float u = b * b;
        float j = MathF.FusedMultiplyAdd(
            MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(C0, b, C1), u, MathF.FusedMultiplyAdd(C2, b, C3)), u, C4 * b);
        float absN = MathF.Abs(n);
        if (!(absN > 126f)) return MathF.FusedMultiplyAdd(k, j, k);
        int g = n <= 0f ? unchecked((int)0x82000000u) : 0;
        float s1 = BitConverter.Int32BitsToSingle(g + 0x7f000000);
        float s2 = BitConverter.Int32BitsToSingle(e - g);
        if (absN > 192f) return s1 * s1;
        return MathF.FusedMultiplyAdd(s2, j, s2) * s1;
    }
}
