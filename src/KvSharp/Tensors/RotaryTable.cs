using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// The rotary angles' cos and sin of every position a cache holds, for a KV type that stores keys before RoPE and
/// rotates them when they are read (KIVI keys, <see cref="KvKivi{TBits, TAxis}"/>). The values come from the model's
/// own angle code (the Cache layer fills the table with <c>RotaryEmbedding.Angles</c>), so a key rotated here is
/// rotated by exactly the floats the forward pass rotated it by. Position p's Dims/2 cos, then its Dims/2 sin, lie at
/// p x Dims floats. Pinned, so element types can keep its address in their
/// side plane and read it with no lookup per row; it grows (by doubling), never shrinks, and keeps every address it gave valid.
/// </summary>
public sealed class RotaryTable
{
    /// <summary>Fills cos and sin (Dims / 2 each) for one position.</summary>
    public delegate void AnglesOf(int position, Span<float> cos, Span<float> sin);

    private readonly AnglesOf _angles;
    private float[] _table = [];
    // Tables outgrown: an address handed out stays valid while the table lives (a pool's table is shared by its
    // sequences, and one prepared earlier in a step still reads the address it was given).
    private readonly List<float[]> _outgrown = [];

    /// <param name="dims">Rotated dimensions (even, at most head_dim): the model's RoPE dimension count.</param>
    /// <param name="pairsHalves">NeoX layout: pair i is (i, i + Dims/2); else (2i, 2i + 1), as the model's RoPE pairs them.</param>
    /// <param name="angles">The model's angles of a position.</param>
    public RotaryTable(int dims, bool pairsHalves, AnglesOf angles)
    {
        if (dims <= 0 || dims % 2 != 0) throw new ArgumentOutOfRangeException(nameof(dims), dims, "rotated dimensions must be even and positive");
        Dims = dims;
        PairsHalves = pairsHalves;
        _angles = angles;
    }

    public int Dims { get; }

    public bool PairsHalves { get; }

    /// <summary>Positions the table holds.</summary>
    public int Positions => _table.Length / Dims;

    /// <summary>Address of position 0's cos (pinned; changes when the table grows).</summary>
    public nint Address => _table.Length == 0 ? 0 : Marshal.UnsafeAddrOfPinnedArrayElement(_table, 0);

    /// <summary>Grows the table to hold positions [0, <paramref name="positions"/>).</summary>
    public void Cover(int positions)
    {
        int have = Positions;
        if (positions <= have) return;
        int grown = Math.Max(positions, Math.Max(64, 2 * have));
        var table = GC.AllocateArray<float>(grown * Dims, pinned: true);
        _table.CopyTo(table, 0);
        int half = Dims / 2;
        for (int p = have; p < grown; p++) _angles(p, table.AsSpan(p * Dims, half), table.AsSpan(p * Dims + half, half));
        _outgrown.Add(_table);
        _table = table;
    }

    /// <summary>
    /// Rotates <paramref name="x"/> (a head's row) as RoPE does at the position whose cos/sin are at
    /// <paramref name="angles"/>: the products and sums of <c>RotaryEmbedding.Apply</c>, so the same floats, four or
    /// eight pairs at a time where AVX2 is there (x' = x cos + (its partner) (∓sin), which is x cos - partner sin
    /// exactly, as negation is exact), the rest one pair at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Rotate(ref float x, float* angles, int dims, bool pairsHalves)
    {
        int half = dims / 2, step = pairsHalves ? 1 : 2, partner = pairsHalves ? half : 1, i = 0;
        if (Avx2.IsSupported)
        {
            if (pairsHalves)
            {
                // Pair i is (i, i + half): eight pairs are two runs of eight.
                for (; i + 8 <= half; i += 8)
                {
                    Vector256<float> a = Vector256.LoadUnsafe(ref x, (nuint)i), b = Vector256.LoadUnsafe(ref x, (nuint)(i + half));
                    Vector256<float> cos = Avx.LoadVector256(angles + i), sin = Avx.LoadVector256(angles + half + i);
                    Avx.Subtract(Avx.Multiply(a, cos), Avx.Multiply(b, sin)).StoreUnsafe(ref x, (nuint)i);
                    Avx.Add(Avx.Multiply(a, sin), Avx.Multiply(b, cos)).StoreUnsafe(ref x, (nuint)(i + half));
                }
            }
            else
            {
                // Pair i is (2i, 2i + 1): four pairs are eight neighbours; each angle serves two lanes.
                Vector256<int> twice = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
                Vector256<float> signs = Vector256.Create(-0f, 0f, -0f, 0f, -0f, 0f, -0f, 0f);
                for (; i + 4 <= half; i += 4)
                {
                    Vector256<float> v = Vector256.LoadUnsafe(ref x, (nuint)(2 * i));
                    Vector256<float> cos = Avx2.PermuteVar8x32(Vector128.Load(angles + i).ToVector256Unsafe(), twice);
                    Vector256<float> sin = Avx2.PermuteVar8x32(Vector128.Load(angles + half + i).ToVector256Unsafe(), twice) ^ signs;
                    Vector256<float> swapped = Avx.Permute(v, 0b10_11_00_01);
                    Avx.Add(Avx.Multiply(v, cos), Avx.Multiply(swapped, sin)).StoreUnsafe(ref x, (nuint)(2 * i));
                }
            }
        }
        for (; i < half; i++)
        {
            ref float a = ref Unsafe.Add(ref x, i * step);
            ref float b = ref Unsafe.Add(ref a, partner);
            float x0 = a, x1 = b, cos = angles[i], sin = angles[half + i];
            a = x0 * cos - x1 * sin;
            b = x0 * sin + x1 * cos;
        }
    }

    /// <summary>The inverse of <see cref="Rotate"/>: a rotated row back to its position-free form (within float rounding).</summary>
    public static unsafe void Unrotate(Span<float> x, float* angles, int dims, bool pairsHalves)
    {
        int half = dims / 2, step = pairsHalves ? 1 : 2, partner = pairsHalves ? half : 1;
        for (int i = 0; i < half; i++)
        {
            int a = i * step, b = a + partner;
            float x0 = x[a], x1 = x[b], cos = angles[i], sin = angles[half + i];
            x[a] = x0 * cos + x1 * sin;
            x[b] = x1 * cos - x0 * sin;
        }
    }
}
