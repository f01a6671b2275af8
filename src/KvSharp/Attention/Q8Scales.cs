using System.Runtime.CompilerServices;

namespace KvSharp.Attention;

/// <summary>
/// Where the scales of Q8_0 rows in groups of 32 are, for kernels that dequantize in registers: the element at byte
/// distance o from the rows' origin has its scale at <c>scales[o / 32]</c> (rows start at multiples of the group, so
/// a 16-element chunk at a multiple of 16 shares one scale). The default value serves float and Half rows, which
/// never ask.
/// </summary>
internal readonly ref struct Q8Scales
{
    /// <summary>Elements per scale on the in-register path; other groupings dequantize tiles into a buffer.</summary>
    public const int Group = 32;

    private readonly ref sbyte _origin;
    private readonly ref float _scales;

    public Q8Scales(ref sbyte origin, ref float scales)
    {
        _origin = ref origin;
        _scales = ref scales;
    }

    /// <summary>The scale of the group holding <paramref name="element"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Of<T>(ref T element) where T : unmanaged =>
        Unsafe.Add(ref _scales, (nint)Unsafe.ByteOffset(ref _origin, ref Unsafe.As<T, sbyte>(ref element)) >> 5);
}
