using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Benchmarks;

/// <summary>
/// One-token (decode) formulations over <see cref="InterleavedRows"/> that issue 18 measured against the shipped
/// kernels (<see cref="VecDotAvx2Interleaved.Q8_0x1"/>, <see cref="VecDotAvx2Interleaved.Q4_0x1"/>) and dropped, kept
/// here so <see cref="OneTokenStreamBenchmarks"/> can measure them again on a quiet machine: the same arithmetic per
/// row (so the same bits, which the benchmark checks in its setup), only the way the weights are streamed differs.
/// Also the ceiling: a loop that only loads the same bytes.
/// </summary>
internal static unsafe class OneTokenVariants
{
    /// <summary>Bytes a Q8_0 activation block's extras take after the row (scale as float, 8 x quant sum).</summary>
    private const int Extras = 8;

    /// <summary>Prefetch hints the variants are generic over, so each is compiled with its hint and no branch.</summary>
    public interface IHint
    {
        static abstract void Line(byte* p);
    }

    /// <summary>prefetcht1: into L2 (what the AVX-512 pair kernels use).</summary>
    public readonly struct IntoL2 : IHint
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Line(byte* p) => Sse.Prefetch1(p);
    }

    /// <summary>No hint: the hardware prefetchers alone.</summary>
    public readonly struct NoHint : IHint
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Line(byte* p) { }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Lines<THint>(byte* p, int bytes) where THint : IHint
    {
        if (typeof(THint) == typeof(NoHint)) return;
        for (int o = 0; o < bytes; o += 64) THint.Line(p + o);
    }

    /// <summary>A weight type's group block (eight rows) times one token's block: the exact int32 dot per row.</summary>
    public interface IBlock
    {
        static abstract int Bytes { get; }

        static abstract Vector256<int> Dot(byte* w, byte* y, byte* e);
    }

    public readonly struct Q8 : IBlock
    {
        public static int Bytes => 8 * Q8_0Bytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(byte* w, byte* y, byte* e) => Q8Block(w, y);
    }

    public readonly struct Q4 : IBlock
    {
        public static int Bytes => 8 * Q4_0Bytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(byte* w, byte* y, byte* e) => Q4Block(w, y, e);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<float> acc, byte* w, byte* e, Vector256<int> sum)
        => Fma.MultiplyAdd(Avx.Multiply(VecDotAvx2.HalfToSingle((ushort*)w), Vector256.Create(*(float*)e)), Avx.ConvertToVector256Single(sum), acc);

    /// <summary>A Q8_0 group block times one token's block: the sign trick over two int32 chains, as Q8_0x1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8Block(byte* w, byte* y)
    {
        Vector256<int> i0 = default, i1 = default;
        for (int s = 0; s < 8; s += 2)
        {
            Vector256<sbyte> w0 = Avx.LoadVector256((sbyte*)(w + 16 + 32 * s)), w1 = Avx.LoadVector256((sbyte*)(w + 48 + 32 * s));
            i0 = Avx2.Add(i0, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Sign(w0, w0).AsByte(), Avx2.Sign(Broadcast4(y + 2 + 4 * s), w0)), Vector256.Create((short)1)));
            i1 = Avx2.Add(i1, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Sign(w1, w1).AsByte(), Avx2.Sign(Broadcast4(y + 6 + 4 * s), w1)), Vector256.Create((short)1)));
        }
        return Avx2.Add(i0, i1);
    }

    /// <summary>A Q4_0 group block times one token's block: nibbles in int16 chains, widened once, minus the offset, as Q4_0x1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q4Block(byte* w, byte* y, byte* e)
    {
        Vector256<byte> mask = Vector256.Create((byte)0x0F);
        Vector256<short> i0 = default, i1 = default;
        for (int k = 0; k < 4; k += 2)
        {
            Vector256<byte> v0 = Avx.LoadVector256(w + 16 + 32 * k), v1 = Avx.LoadVector256(w + 48 + 32 * k);
            i0 = Q4Step(i0, v0, mask, y + 2 + 4 * k);
            i1 = Q4Step(i1, v1, mask, y + 6 + 4 * k);
        }
        return Avx2.Subtract(Avx2.MultiplyAddAdjacent(Avx2.Add(i0, i1), Vector256.Create((short)1)), Vector256.Create(*(int*)(e + 4)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Q4Step(Vector256<short> sum, Vector256<byte> v, Vector256<byte> mask, byte* q)
    {
        Vector256<byte> lo = Avx2.And(v, mask), hi = Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask);
        return Avx2.Add(Avx2.Add(sum, Avx2.MultiplyAddAdjacent(lo, Broadcast4(q))), Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + 16)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast4(byte* q) => Vector256.Create(*(int*)q).AsSByte();

    /// <summary>
    /// One group (eight rows) x one token, one block at a time, each block's counterpart <paramref name="ahead"/> bytes on
    /// requested with <typeparamref name="THint"/> first.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void OneGroupAhead<TBlock, THint>(byte* w, nint ahead, byte* y, int n, float* output) where TBlock : IBlock where THint : IHint
    {
        int nb = n / QK, block = TBlock.Bytes;
        byte* e = y + nb * Q8_0Bytes;
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += block, y += Q8_0Bytes, e += Extras)
        {
            Lines<THint>(w + ahead, block);
            acc = Finish(acc, w, e, TBlock.Dot(w, y, e));
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// Two consecutive groups (sixteen rows, two streams <paramref name="groupBytes"/> apart) x one token, block by block,
    /// as the AVX-512 pair kernels read them, each block's counterpart in the next pair requested with
    /// <typeparamref name="THint"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void TwoGroups<TBlock, THint>(byte* w, nint groupBytes, byte* y, int n, float* output) where TBlock : IBlock where THint : IHint
    {
        int nb = n / QK, block = TBlock.Bytes;
        byte* e = y + nb * Q8_0Bytes, w1 = w + groupBytes;
        Vector256<float> acc0 = default, acc1 = default;
        for (int ib = 0; ib < nb; ib++, w += block, w1 += block, y += Q8_0Bytes, e += Extras)
        {
            Lines<THint>(w + 2 * groupBytes, block);
            Lines<THint>(w1 + 2 * groupBytes, block);
            acc0 = Finish(acc0, w, e, TBlock.Dot(w, y, e));
            acc1 = Finish(acc1, w1, e, TBlock.Dot(w1, y, e));
        }
        Avx.Store(output, acc0);
        Avx.Store(output + 8, acc1);
    }

    /// <summary>The ceiling: the same bytes loaded and folded together (xor), nothing else.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void LoadOnly(byte* w, nint bytes, float* output)
    {
        Vector256<byte> a0 = default, a1 = default, a2 = default, a3 = default;
        nint o = 0;
        for (; o + 128 <= bytes; o += 128)
        {
            a0 ^= Avx.LoadVector256(w + o);
            a1 ^= Avx.LoadVector256(w + o + 32);
            a2 ^= Avx.LoadVector256(w + o + 64);
            a3 ^= Avx.LoadVector256(w + o + 96);
        }
        for (; o < bytes; o++) a0 ^= Vector256.Create(w[o]);
        Avx.Store(output, (a0 ^ a1 ^ a2 ^ a3).AsSingle());
    }
}
