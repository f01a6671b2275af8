using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>
/// KIVI's keys: each channel over the group's tokens is one set (<see cref="KiviQuantizer"/>). The group's side data is
/// its channels' binary16 mins, then their scales (4 x head_dim bytes, spread over its rows' side shares).
/// </summary>
public readonly struct KiviPerChannel : IKiviAxis
{
    public static int SideBytes(int headDim) => (4 * headDim + KvKivi.GroupRows - 1) / KvKivi.GroupRows;

    /// <summary>
    /// Keys are the sensitive side, and attention leans on the newest of them: on stories260K (kivi4 keys before RoPE,
    /// f16 values) 64 more exact rows took top-1 agreement from 94.8% to 99.1% (32: 96.8%); see docs/policies.md.
    /// </summary>
    public static int ExactRows => 64;

    public static void Quantize(ReadOnlySpan<float> rows, int headDim, int bits, int rowBytes, Span<byte> codes, Span<byte> side)
    {
        int levels = (1 << bits) - 1, count = rows.Length / headDim;
        Span<Half> mins = MemoryMarshal.Cast<byte, Half>(side)[..headDim], scales = MemoryMarshal.Cast<byte, Half>(side).Slice(headDim, headDim);
        for (int c = 0; c < headDim; c++)
        {
            var (low, high) = KiviRange.Of(rows, c, headDim, count);
            (mins[c], scales[c]) = KiviQuantizer.Parameters(low, high, levels);
            float min = (float)mins[c], scale = (float)scales[c];
            for (int r = 0; r < count; r++)
                KiviQuantizer.Pack(codes.Slice(r * rowBytes, rowBytes), c, KiviQuantizer.Code(rows[r * headDim + c], min, scale, levels), bits);
        }
    }

    public static void ReadRun(ref byte codes, int rowBytes, ref byte groupSide, int inGroup, int count, int headDim, int bits, ref float destination)
    {
        // A group's channel parameters serve every row of the run: widened once, not once per row, sixteen at a time
        // (HalfConvert.ToSingle: (float)half's bits; one at a time they were ~4% of a kivi4 decode step at depth).
        Span<float> parameters = headDim <= 512 ? stackalloc float[2 * headDim] : new float[2 * headDim];
        HalfConvert.ToSingle(ref Unsafe.As<byte, Half>(ref groupSide), ref parameters[0], 2 * headDim);
        ref float mins = ref parameters[0], scales = ref parameters[headDim];
        int width = KiviCodes.Widest(bits);
        for (int r = 0; r < count; r++)
            KiviCodes.Dequantize(ref Unsafe.Add(ref codes, r * rowBytes), 0, headDim, bits, ref scales, ref mins, ref Unsafe.Add(ref destination, r * headDim), width);
    }
}

/// <summary>
/// KIVI's values: each row's channels in groups of 32 (a whole row where head_dim is not a multiple of 32) are one set
/// each. A row's side data is its groups' binary16 (min, scale) pairs.
/// </summary>
public readonly struct KiviPerToken : IKiviAxis
{
    /// <summary>Channels per set: 32, or a whole row where head_dim is not a multiple of 32.</summary>
    public static int ChannelGroup(int headDim) => headDim % 32 == 0 ? 32 : headDim;

    public static int SideBytes(int headDim) => headDim / ChannelGroup(headDim) * 4;

    /// <summary>Values cost little at 4 bits (docs/policies.md): a group is quantized as soon as it fills.</summary>
    public static int ExactRows => 0;

    public static void Quantize(ReadOnlySpan<float> rows, int headDim, int bits, int rowBytes, Span<byte> codes, Span<byte> side)
    {
        int levels = (1 << bits) - 1, count = rows.Length / headDim, group = ChannelGroup(headDim), sideBytes = SideBytes(headDim);
        for (int r = 0; r < count; r++)
        {
            ReadOnlySpan<float> row = rows.Slice(r * headDim, headDim);
            Span<Half> parameters = MemoryMarshal.Cast<byte, Half>(side.Slice(r * sideBytes, sideBytes));
            for (int g = 0; g < headDim / group; g++)
            {
                var (low, high) = KiviRange.Of(row.Slice(g * group, group), 0, 1, group);
                var (min, scale) = KiviQuantizer.Parameters(low, high, levels);
                parameters[2 * g] = min;
                parameters[2 * g + 1] = scale;
                for (int c = g * group; c < (g + 1) * group; c++)
                    KiviQuantizer.Pack(codes.Slice(r * rowBytes, rowBytes), c, KiviQuantizer.Code(row[c], (float)min, (float)scale, levels), bits);
            }
        }
    }

    public static void ReadRun(ref byte codes, int rowBytes, ref byte groupSide, int inGroup, int count, int headDim, int bits, ref float destination)
    {
        int group = ChannelGroup(headDim), groups = headDim / group, perRow = 2 * groups;
        int width = KiviCodes.Widest(bits);
        // The run's rows keep their (min, scale) pairs side by side (SideBytes each): all widened at once, sixteen at a
        // time, instead of two conversions per group of every row.
        int floats = count * perRow;
        Span<float> parameters = floats <= 1024 ? stackalloc float[floats] : new float[floats];
        HalfConvert.ToSingle(ref Unsafe.As<byte, Half>(ref Unsafe.Add(ref groupSide, inGroup * SideBytes(headDim))), ref parameters[0], floats);
        for (int r = 0; r < count; r++)
        {
            ref byte row = ref Unsafe.Add(ref codes, r * rowBytes);
            ref float to = ref Unsafe.Add(ref destination, r * headDim);
            for (int g = 0; g < groups; g++)
                KiviCodes.Dequantize(ref row, g * group, (g + 1) * group, bits, parameters[r * perRow + 2 * g + 1], parameters[r * perRow + 2 * g], ref to, width);
        }
    }
}

/// <summary>The least and greatest of a strided set of floats; NaN for both if any is NaN.</summary>
internal static class KiviRange
{
    public static (float Min, float Max) Of(ReadOnlySpan<float> x, int start, int stride, int count)
    {
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        for (int i = 0; i < count; i++)
        {
            float v = x[start + i * stride];
            if (float.IsNaN(v)) return (float.NaN, float.NaN);
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
        }
        return (min, max);
    }
}
