using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>
/// Byte layouts of ggml's quantization blocks (ggml-common.h) and the small scalar helpers every kernel shares.
/// All multi-byte fields are little-endian; half floats are IEEE binary16, bfloat16 is the top half of a float.
/// </summary>
/// <remarks>
/// <code>
/// Q8_0  (34 B / 32):  f16 d | i8 qs[32]                                  x = d*q
/// Q8_1  (36 B / 32):  f16 d | f16 s | i8 qs[32]                          s = d*sum(q) (only used as activation)
/// Q4_0  (18 B / 32):  f16 d | u8 qs[16]                                  x[j] = d*((qs[j]&15)-8), x[j+16] = d*((qs[j]>>4)-8)
/// Q5_0  (22 B / 32):  f16 d | u32 qh | u8 qs[16]                         5th bit of element e is bit e of qh; x = d*(q-16)
/// Q5_1  (24 B / 32):  f16 d | f16 m | u32 qh | u8 qs[16]                 x = d*q + m
/// Q4_1  (20 B / 32):  f16 d | f16 m | u8 qs[16]                          x[j] = d*(qs[j]&15) + m, x[j+16] = d*(qs[j]>>4) + m
/// Q8_K  (292 B/256):  f32 d | i8 qs[256] | i16 bsums[16]                 bsums[k] = sum of qs[16k..16k+15]
/// Q4_K  (144 B/256):  f16 d | f16 dmin | u8 scales[12] | u8 qs[128]      8 sub-blocks of 32, 6-bit scale and min each
/// Q5_K  (176 B/256):  f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
/// Q6_K  (210 B/256):  u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d    16 sub-blocks of 16, x = d*sc*(q-32)
/// Q3_K  (110 B/256):  u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d   16 sub-blocks of 16, 6-bit sc, x = d*(sc-32)*(q-4·!hbit)
/// Q2_K  (84 B/256):   u8 scales[16] | u8 qs[64] | f16 d | f16 dmin     16 sub-blocks of 16, x = d*(sc&15)*q - dmin*(sc>>4)
/// IQ4_NL (18 B / 32): f16 d | u8 qs[16]                                  x[j] = d*kv[qs[j]&15], x[j+16] = d*kv[qs[j]>>4] (kv = <see cref="Iq4NlValues"/>)
/// IQ4_XS (136 B/256): f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128]  8 sub-blocks of 32 as IQ4_NL with d*(ls-32), ls 6 bits (4 in scales_l, 2 in scales_h)
/// MXFP4 (17 B / 32):  u8 e | u8 qs[16]                                   x[j] = d*kv[qs[j]&15], x[j+16] = d*kv[qs[j]>>4], d = 2^(e-128) (kv = <see cref="Mxfp4Values"/>, d = <see cref="E8M0Half"/>)
/// </code>
/// </remarks>
internal static class BlockLayouts
{
    public const int QK = 32;    // elements per legacy block
    public const int QK_K = 256; // elements per K-quant super-block

    public const int Q8_0Bytes = 34, Q8_1Bytes = 36, Q4_0Bytes = 18, Q5_0Bytes = 22, Q5_1Bytes = 24;
    public const int Q8_KBytes = 292, Q4_KBytes = 144, Q5_KBytes = 176, Q6_KBytes = 210;
    public const int Q4_1Bytes = 20;
    public const int IQ4_NLBytes = 18;
    public const int MXFP4Bytes = 17;
    public const int IQ4_XSBytes = 136, IQ4_XS_ScalesH = 2, IQ4_XS_ScalesL = 4, IQ4_XS_Qs = 8;

    // Offsets inside K blocks.
    public const int Q8_K_Qs = 4, Q8_K_Bsums = 260;
    public const int Q4_K_Scales = 4, Q4_K_Qs = 16;
    public const int Q5_K_Scales = 4, Q5_K_Qh = 16, Q5_K_Qs = 48;
    public const int Q6_K_Ql = 0, Q6_K_Qh = 128, Q6_K_Scales = 192, Q6_K_D = 208;
    public const int Q3_KBytes = 110, Q3_K_Hmask = 0, Q3_K_Qs = 32, Q3_K_Scales = 96, Q3_K_D = 108;
    public const int Q2_KBytes = 84, Q2_K_Scales = 0, Q2_K_Qs = 16, Q2_K_D = 80, Q2_K_Dmin = 82;

    /// <summary>The 16 non-linear 4-bit levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).</summary>
    public static ReadOnlySpan<sbyte> Iq4NlValues => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>
    /// The 16 levels of MXFP4 (ggml's kvalues_mxfp4): the E2M1 values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives,
    /// doubled so that they are integers (the block scale is halved to match, <see cref="E8M0Half"/>).
    /// </summary>
    public static ReadOnlySpan<sbyte> Mxfp4Values => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    /// <summary>
    /// ggml's GGML_E8M0_TO_FP32_HALF: half the E8M0 scale 2^(e-127), i.e. 2^(e-128), the factor of the doubled
    /// <see cref="Mxfp4Values"/>. Built from bits; e = 0 and 1 give the subnormals 2^-128 and 2^-127, and e = 255 is
    /// 2^127 (ggml gives E8M0's NaN code no meaning of its own).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float E8M0Half(byte e) => BitConverter.UInt32BitsToSingle(e < 2 ? 0x00200000u << e : (uint)(e - 1) << 23);

    /// <summary>The stored 6-bit scale (0..63; the value used is that minus 32) of sub-block <paramref name="ib"/> of an IQ4_XS block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Iq4XsScale(ReadOnlySpan<byte> block, int ib) =>
        ((block[IQ4_XS_ScalesL + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((block[IQ4_XS_ScalesH + ib / 4] >> (2 * (ib % 4))) & 3) << 4);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16(ReadOnlySpan<byte> b, int offset) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(offset, 2)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float F16(byte* p) => HalfToFloat(*(ushort*)p);

    /// <summary>
    /// Exact binary16 -> binary32 (every half is representable as a float). Hot: every block scale goes through it,
    /// and .NET has no F16C intrinsic, so it is one load from a 256 KiB table (as ggml's GGML_FP16_TO_FP32 without
    /// F16C); in practice only the few hundred entries near typical scales stay in cache.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HalfToFloat(ushort h) => Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(HalfTable), h);

    private static readonly float[] HalfTable = BuildHalfTable();

    private static float[] BuildHalfTable()
    {
        var t = new float[65536];
        for (int i = 0; i < t.Length; i++) t[i] = HalfToFloatComputed((ushort)i);
        return t;
    }

    /// <summary>
    /// The conversion computed without the table, branch-free: the half's exponent and mantissa are placed in a float
    /// and scaled by 2^112, which rebiases normals and renormalizes subnormals exactly; an all-ones exponent
    /// (Inf/NaN) is restored after.
    /// </summary>
    internal static float HalfToFloatComputed(ushort h)
    {
        uint o = ((uint)h & 0x7fff) << 13;
        uint bits = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(o) * 5.192297e33f /* 2^112 */);
        bits |= o >= 0x0f800000 ? 0x7f800000u : 0u;
        return BitConverter.UInt32BitsToSingle(bits | (((uint)h & 0x8000) << 16));
    }

    /// <summary>binary32 -> binary16 rounding to nearest even, as F16C's vcvtps2ph with imm 0 (ggml's GGML_FP32_TO_FP16 on x86).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToHalf(float f) => BitConverter.HalfToUInt16Bits((Half)f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToFloat(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>binary32 -> bfloat16 rounding to nearest even; NaNs stay (quiet) NaNs. Same as ggml_compute_fp32_to_bf16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToBF16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64); // NaN: force quiet
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    /// <summary>
    /// ggml's nearest_int: adding 1.5*2^23 makes the FPU round to an integer (nearest, ties to even) for |x| &lt; 2^22.
    /// Written out so that our rounding is the one ggml's K-quant code uses.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float x)
    {
        float v = x + 12582912f;
        return (BitConverter.SingleToInt32Bits(v) & 0x007fffff) - 0x00400000;
    }

    /// <summary>The 6-bit scale and min of sub-block <paramref name="j"/> (0..7) of a Q4_K/Q5_K block (ggml get_scale_min_k4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMinK4(int j, ReadOnlySpan<byte> q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void ScaleMinK4(int j, byte* q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    /// <summary>
    /// Checks that <paramref name="bytes"/> holds the blocks for <paramref name="n"/> elements of <paramref name="type"/>.
    /// <paramref name="what"/> names the caller; the message is only built on failure (hot paths call this).
    /// </summary>
    public static void CheckRow(GgmlType type, int n, int bytes, string what)
    {
        int bs = GgmlTypes.BlockSize(type);
        if (n < 0 || n % bs != 0)
            throw new ArgumentException($"{what} ({type}): {n} elements is not a whole number of {type} blocks of {bs}");
        long need = (long)n / bs * GgmlTypes.BlockBytes(type);
        if (bytes < need)
            throw new ArgumentException($"{what} ({type}): {n} elements need {need} bytes, the span has {bytes}");
    }
}
