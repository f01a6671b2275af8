using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    internal static Vector128<sbyte> Mxfp4Table => Vector128.Create(Mxfp4Values);

    /// <summary>The MXFP4 level table in both 128-bit halves, for 256-bit vpshufb.</summary>
    internal static Vector256<sbyte> Mxfp4Table2 => Vector256.Create(Mxfp4Table, Mxfp4Table);

    /// <summary>
    /// MXFP4 x Q8_0 in block-sequential order (<see cref="VecDotScalar.Mxfp4"/>): IQ4_NL's kernel with MXFP4's level
    /// table, the nibbles one byte in (after the exponent) and the scale 2^(e-128) in place of the f16. The levels
    /// (|l| ≤ 12) times Q8_0's quants stay far inside vpmaddubsw's int16 pair sums.
    /// </summary>
    public static float Mxfp4(byte* x, byte* y, int nb) => NibbleLevelRow<Mxfp4Levels>(x, y, nb);
}
