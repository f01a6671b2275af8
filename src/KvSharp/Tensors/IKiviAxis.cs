namespace KvSharp.Tensors;

/// <summary>
/// Along which axis a KIVI group of rows is quantized (<see cref="KvKivi{TBits, TAxis}"/>): keys per channel (each
/// channel over the group's tokens shares a min and a scale, so an outlier channel costs only itself), values per
/// token (each row's groups of channels have their own).
/// </summary>
public interface IKiviAxis
{
    /// <summary>Bytes of side data per row: a group of <see cref="KvKivi{TBits, TAxis}.GroupRows"/> rows keeps GroupRows x this many.</summary>
    static abstract int SideBytes(int headDim);

    /// <summary>
    /// Rows kept exact after the newest complete group: a group is quantized once this many newer rows follow it, so
    /// the newest ExactRows to ExactRows + GroupRows - 1 rows are exact floats (KIVI's residual R, which the paper
    /// sets to 128 with groups of 32).
    /// </summary>
    static abstract int ExactRows { get; }

    /// <summary>
    /// Quantizes a full group: <paramref name="rows"/> holds GroupRows rows of <paramref name="headDim"/> floats; the
    /// packed codes go to <paramref name="codes"/> (GroupRows rows of <paramref name="rowBytes"/>, zeroed), the
    /// parameters to <paramref name="side"/> (GroupRows x SideBytes).
    /// </summary>
    static abstract void Quantize(ReadOnlySpan<float> rows, int headDim, int bits, int rowBytes, Span<byte> codes, Span<byte> side);

    /// <summary>
    /// Rows <paramref name="inGroup"/> .. + <paramref name="count"/> - 1 of a quantized group (the first's codes at
    /// <paramref name="codes"/>, the next <paramref name="rowBytes"/> on), one after another from
    /// <paramref name="destination"/>: each float code x scale + min of its set, one rounding after the product and one after
    /// the sum (<see cref="KiviCodes"/>), with the parameters widened once and the codes eight at a time. The attention
    /// kernel's tile of floats.
    /// </summary>
    static abstract void ReadRun(ref byte codes, int rowBytes, ref byte groupSide, int inGroup, int count, int headDim, int bits, ref float destination);
}
