using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// AVX2 kernels over <see cref="InterleavedRows"/>: eight weight rows (one per lane) against one or four tokens.
/// Per row and token the arithmetic is the block-sequential order of <see cref="VecDotScalar.Q8_0"/> /
/// <see cref="VecDotScalar.Q4_0"/>: each block's exact integer dot, then acc = fma(dx * dy, sum, acc), so every
/// output is bit-identical to the single-row kernels and to any other grouping of tokens.
/// </summary>
/// <remarks>
/// Why this is faster than one row at a time: ggml's kernels spend, per 32 multiply-adds of one row and token, a
/// vpmaddubsw, a vpmaddwd, a conversion, a scale product and an FMA. Here a lane is a row, so a block's integer
/// partial sums stay in int32 lanes (Q8_0) or even int16 lanes (Q4_0) across the block, and the conversion, scale
/// product and FMA are paid once per block for eight rows; nor is there a horizontal sum per output.
/// The activation row is a Q8_0 row followed by <see cref="Extras"/> (the block scale as a float and 8 x the sum of
/// its quants), written once per row by <see cref="AppendExtras"/>.
/// </remarks>
internal static unsafe class VecDotAvx2Interleaved
{
    /// <summary>Extra bytes after a Q8_0 activation row of <paramref name="blocks"/> blocks.</summary>
    public static int ExtraBytes(int blocks) => blocks * Extras;

    private const int Extras = 8;

    /// <summary>Writes each block's scale (float) and 8 x its quant sum (int) after the Q8_0 row at <paramref name="row"/>.</summary>
    public static void AppendExtras(byte* row, int blocks)
    {
        byte* e = row + blocks * Q8_0Bytes;
        for (int b = 0; b < blocks; b++, e += Extras)
        {
            sbyte* q = (sbyte*)(row + b * Q8_0Bytes + 2);
            int sum = 0;
            for (int j = 0; j < QK; j++) sum += q[j];
            *(float*)e = F16(row + b * Q8_0Bytes);
            *(int*)(e + 4) = 8 * sum;
        }
    }

    /// <summary>Four bytes of the activation block (elements 4i..4i+3 from <paramref name="q"/>) in every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast4(byte* q) => Vector256.Create(*(int*)q).AsSByte();

    /// <summary>Q8_0 groups: lanes += |w| x sign(y, w) over four elements (ggml's sign trick, no int16 overflow).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8Step(Vector256<int> sum, Vector256<byte> aw, Vector256<sbyte> w, byte* y)
        => Avx2.Add(sum, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Broadcast4(y), w)), Vector256.Create((short)1)));

    /// <summary>acc = fma(dx * dy, float(sum), acc): the block's scale product and one FMA, per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<float> acc, Vector256<float> dx, byte* e, Vector256<int> sum)
        => Fma.MultiplyAdd(Avx.Multiply(dx, Vector256.Create(*(float*)e)), Avx.ConvertToVector256Single(sum), acc);

    /// <summary>
    /// Eight interleaved Q8_0 rows (group at <paramref name="w"/>) x four tokens (activation rows y + k * yStride):
    /// out[k * outStride + r] = dot(row r, token k).
    /// </summary>
    public static void Q8_0x4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += 8 * Q8_0Bytes, y += Q8_0Bytes, e += Extras)
        {
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int s = 0; s < 8; s++)
            {
                Vector256<sbyte> wv = Avx.LoadVector256((sbyte*)(w + 16 + 32 * s));
                Vector256<byte> aw = Avx2.Sign(wv, wv).AsByte();
                byte* q = y + 2 + 4 * s;
                i0 = Q8Step(i0, aw, wv, q);
                i1 = Q8Step(i1, aw, wv, q + s1);
                i2 = Q8Step(i2, aw, wv, q + s2);
                i3 = Q8Step(i3, aw, wv, q + s3);
            }
            Vector256<float> dx = VecDotAvx2.HalfToSingle((ushort*)w);
            a0 = Finish(a0, dx, e, i0);
            a1 = Finish(a1, dx, e + s1, i1);
            a2 = Finish(a2, dx, e + s2, i2);
            a3 = Finish(a3, dx, e + s3, i3);
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4(float* output, nint stride, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        Avx.Store(output, a0);
        Avx.Store(output + stride, a1);
        Avx.Store(output + 2 * stride, a2);
        Avx.Store(output + 3 * stride, a3);
    }

    /// <summary>Eight interleaved Q8_0 rows x one token: output[r] = dot(row r, y).</summary>
    public static void Q8_0x1(byte* w, byte* y, int n, float* output)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += 8 * Q8_0Bytes, y += Q8_0Bytes, e += Extras)
        {
            // Two partial sums shorten the dependency chain; integer adds are exact, so the split changes nothing.
            Vector256<int> i0 = default, i1 = default;
            for (int s = 0; s < 8; s += 2)
            {
                Vector256<sbyte> w0 = Avx.LoadVector256((sbyte*)(w + 16 + 32 * s)), w1 = Avx.LoadVector256((sbyte*)(w + 48 + 32 * s));
                i0 = Q8Step(i0, Avx2.Sign(w0, w0).AsByte(), w0, y + 2 + 4 * s);
                i1 = Q8Step(i1, Avx2.Sign(w1, w1).AsByte(), w1, y + 6 + 4 * s);
            }
            acc = Finish(acc, VecDotAvx2.HalfToSingle((ushort*)w), e, Avx2.Add(i0, i1));
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// Q4_0 groups: the unsigned nibbles times the activation bytes in int16 lanes. A lane pair is at most
    /// 2 x 15 x 127 = 3810, so a whole block (four such steps, each adding two) stays below 32767 and is widened once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Q4Step(Vector256<short> sum, Vector256<byte> lo, Vector256<byte> hi, byte* q)
        => Avx2.Add(Avx2.Add(sum, Avx2.MultiplyAddAdjacent(lo, Broadcast4(q))), Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + 16)));

    /// <summary>The block's int32 lanes: the nibble sums widened, minus 8 x the activation sum (the nibbles' offset of 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q4Sum(Vector256<short> sum, byte* e)
        => Avx2.Subtract(Avx2.MultiplyAddAdjacent(sum, Vector256.Create((short)1)), Vector256.Create(*(int*)(e + 4)));

    /// <summary>Eight interleaved Q4_0 rows x four tokens; see <see cref="Q8_0x4"/>.</summary>
    public static void Q4_0x4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<byte> mask = Vector256.Create((byte)0x0F);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += 8 * Q4_0Bytes, y += Q8_0Bytes, e += Extras)
        {
            Vector256<short> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int k = 0; k < 4; k++)
            {
                Vector256<byte> v = Avx.LoadVector256(w + 16 + 32 * k);
                Vector256<byte> lo = Avx2.And(v, mask), hi = Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask);
                byte* q = y + 2 + 4 * k;
                i0 = Q4Step(i0, lo, hi, q);
                i1 = Q4Step(i1, lo, hi, q + s1);
                i2 = Q4Step(i2, lo, hi, q + s2);
                i3 = Q4Step(i3, lo, hi, q + s3);
            }
            Vector256<float> dx = VecDotAvx2.HalfToSingle((ushort*)w);
            a0 = Finish(a0, dx, e, Q4Sum(i0, e));
            a1 = Finish(a1, dx, e + s1, Q4Sum(i1, e + s1));
            a2 = Finish(a2, dx, e + s2, Q4Sum(i2, e + s2));
            a3 = Finish(a3, dx, e + s3, Q4Sum(i3, e + s3));
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }

    /// <summary>Eight interleaved Q4_0 rows x one token.</summary>
    public static void Q4_0x1(byte* w, byte* y, int n, float* output)
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        Vector256<byte> mask = Vector256.Create((byte)0x0F);
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += 8 * Q4_0Bytes, y += Q8_0Bytes, e += Extras)
        {
            Vector256<short> i0 = default, i1 = default;
            for (int k = 0; k < 4; k += 2)
            {
                Vector256<byte> v0 = Avx.LoadVector256(w + 16 + 32 * k), v1 = Avx.LoadVector256(w + 48 + 32 * k);
                i0 = Q4Step(i0, Avx2.And(v0, mask), Avx2.And(Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte(), mask), y + 2 + 4 * k);
                i1 = Q4Step(i1, Avx2.And(v1, mask), Avx2.And(Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte(), mask), y + 6 + 4 * k);
            }
            acc = Finish(acc, VecDotAvx2.HalfToSingle((ushort*)w), e, Q4Sum(Avx2.Add(i0, i1), e));
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// Eight interleaved F32 rows x four tokens. Per row and token two FMA chains, even and odd columns, added at the
    /// end (<see cref="VecDotScalar.DotF32"/>'s order): two chains hide FMA latency when one token runs alone, and
    /// four tokens x two chains are eight accumulators, what the registers hold beside a weight load and a broadcast.
    /// </summary>
    public static void F32x4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        float* wf = (float*)w, y0 = (float*)y, y1 = (float*)(y + yStride), y2 = (float*)(y + 2 * yStride), y3 = (float*)(y + 3 * yStride);
        Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        int c = 0;
        for (; c + 2 <= n; c += 2, wf += 16)
        {
            Vector256<float> we = Avx.LoadVector256(wf), wo = Avx.LoadVector256(wf + 8);
            a0 = Fma.MultiplyAdd(we, Vector256.Create(y0[c]), a0);
            b0 = Fma.MultiplyAdd(wo, Vector256.Create(y0[c + 1]), b0);
            a1 = Fma.MultiplyAdd(we, Vector256.Create(y1[c]), a1);
            b1 = Fma.MultiplyAdd(wo, Vector256.Create(y1[c + 1]), b1);
            a2 = Fma.MultiplyAdd(we, Vector256.Create(y2[c]), a2);
            b2 = Fma.MultiplyAdd(wo, Vector256.Create(y2[c + 1]), b2);
            a3 = Fma.MultiplyAdd(we, Vector256.Create(y3[c]), a3);
            b3 = Fma.MultiplyAdd(wo, Vector256.Create(y3[c + 1]), b3);
        }
        if (c < n)
        {
            Vector256<float> we = Avx.LoadVector256(wf);
            a0 = Fma.MultiplyAdd(we, Vector256.Create(y0[c]), a0);
            a1 = Fma.MultiplyAdd(we, Vector256.Create(y1[c]), a1);
            a2 = Fma.MultiplyAdd(we, Vector256.Create(y2[c]), a2);
            a3 = Fma.MultiplyAdd(we, Vector256.Create(y3[c]), a3);
        }
        Store4(output, outStride, Avx.Add(a0, b0), Avx.Add(a1, b1), Avx.Add(a2, b2), Avx.Add(a3, b3));
    }

    /// <summary>Eight interleaved F32 rows x one token; see <see cref="F32x4"/>.</summary>
    public static void F32x1(byte* w, byte* y, int n, float* output)
    {
        float* wf = (float*)w, yf = (float*)y;
        Vector256<float> a = default, b = default;
        int c = 0;
        for (; c + 2 <= n; c += 2, wf += 16)
        {
            a = Fma.MultiplyAdd(Avx.LoadVector256(wf), Vector256.Create(yf[c]), a);
            b = Fma.MultiplyAdd(Avx.LoadVector256(wf + 8), Vector256.Create(yf[c + 1]), b);
        }
        if (c < n) a = Fma.MultiplyAdd(Avx.LoadVector256(wf), Vector256.Create(yf[c]), a);
        Avx.Store(output, Avx.Add(a, b));
    }

    /// <summary>
    /// Four consecutive F32 groups (32 rows, <paramref name="groupBytes"/> apart) x one token, each group exactly as
    /// <see cref="F32x1"/>. A lone group's two FMA chains wait on FMA latency every column; four groups give eight
    /// independent chains, so decode streams the weights instead of waiting on the adder.
    /// </summary>
    public static void F32x1Groups4(byte* w, nint groupBytes, byte* y, int n, float* output)
    {
        float* w0 = (float*)w, w1 = (float*)(w + groupBytes), w2 = (float*)(w + 2 * groupBytes), w3 = (float*)(w + 3 * groupBytes);
        float* yf = (float*)y;
        Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        int c = 0;
        for (; c + 2 <= n; c += 2)
        {
            Vector256<float> ye = Vector256.Create(yf[c]), yo = Vector256.Create(yf[c + 1]);
            nint o = (nint)c * 8;
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + o), ye, a0);
            b0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + o + 8), yo, b0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + o), ye, a1);
            b1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + o + 8), yo, b1);
            a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + o), ye, a2);
            b2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + o + 8), yo, b2);
            a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + o), ye, a3);
            b3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + o + 8), yo, b3);
        }
        if (c < n)
        {
            Vector256<float> ye = Vector256.Create(yf[c]);
            nint o = (nint)c * 8;
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + o), ye, a0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + o), ye, a1);
            a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + o), ye, a2);
            a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + o), ye, a3);
        }
        Store4(output, 8, Avx.Add(a0, b0), Avx.Add(a1, b1), Avx.Add(a2, b2), Avx.Add(a3, b3));
    }
}
