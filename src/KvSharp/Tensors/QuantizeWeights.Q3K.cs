using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Quantize
{
    /// <summary>
    /// ggml quantize_row_q3_K_ref (what llama-quantize runs without an imatrix), operation for operation so the bytes
    /// are llama-quantize's: per sub-block of 16 a signed scale from <see cref="MakeQ3Quants"/>, the sixteen scales
    /// quantized to 6 bits against the one of largest magnitude (d = −max/32), then every element requantized with
    /// its block's stored scale to −4..3.
    /// </summary>
    private static void Q3_KRef(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<sbyte> L = stackalloc sbyte[QK_K];
        Span<float> scales = stackalloc float[QK_K / 16];
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var blk = y.Slice(b * Q3_KBytes, Q3_KBytes);
            float maxScale = 0, amax = 0;
            for (int j = 0; j < QK_K / 16; j++)
            {
                scales[j] = MakeQ3Quants(xb.Slice(16 * j, 16), 4, L.Slice(16 * j, 16));
                float scale = MathF.Abs(scales[j]);
                if (scale > amax) { amax = scale; maxScale = scales[j]; }
            }

            var sc = blk.Slice(Q3_K_Scales, 12);
            sc.Clear();
            ushort dh = 0;
            if (maxScale != 0)
            {
                float iscale = -32f / maxScale;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    int l = Math.Clamp((int)(sbyte)NearestInt(iscale * scales[j]), -32, 31) + 32;
                    if (j < 8) sc[j] = (byte)(l & 0xF);
                    else sc[j - 8] |= (byte)((l & 0xF) << 4);
                    sc[j % 4 + 8] |= (byte)((l >> 4) << (2 * (j / 4)));
                }
                dh = FloatToHalf(1 / iscale);
            }
            BinaryPrimitives.WriteUInt16LittleEndian(blk.Slice(Q3_K_D), dh);

            for (int j = 0; j < QK_K / 16; j++)
            {
                int s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
                s = (s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
                float d = HalfToFloat(dh) * s;
                if (d == 0) continue; // keeps MakeQ3Quants' levels, as ggml does
                for (int ii = 0; ii < 16; ii++)
                    L[16 * j + ii] = (sbyte)(Math.Clamp(NearestInt(xb[16 * j + ii] / d), -4, 3) + 4);
            }

            // The high bit of element j goes to bit j/32 of hmask[j%32]; the low two bits to qs like Q2_K.
            var hmask = blk.Slice(Q3_K_Hmask, QK_K / 8);
            hmask.Clear();
            for (int j = 0; j < QK_K; j++)
            {
                if (L[j] > 3)
                {
                    hmask[j % 32] |= (byte)(1 << (j / 32));
                    L[j] -= 4;
                }
            }
            PackTwoBits(MemoryMarshal.Cast<sbyte, byte>(L), blk.Slice(Q3_K_Qs, QK_K / 4));
        }
    }

    /// <summary>ggml's 2-bit packing: byte 32h + l holds elements 128h + l, +32, +64, +96 at bits 0, 2, 4, 6.</summary>
    private static void PackTwoBits(ReadOnlySpan<byte> L, Span<byte> qs)
    {
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }

    /// <summary>
    /// ggml make_q3_quants with do_rmse: levels −nmax..nmax−1 from the element of largest magnitude, then up to five
    /// passes that move single elements to the level that most improves the x²-weighted fit; returns the fitted
    /// scale (signed) and leaves the levels shifted by +nmax in <paramref name="L"/>.
    /// </summary>
    private static float MakeQ3Quants(ReadOnlySpan<float> x, int nmax, Span<sbyte> L)
    {
        int n = x.Length;
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            L.Clear();
            return 0;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
            L[i] = (sbyte)l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; itry++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0)
                {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int newL = Math.Clamp(NearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (sbyte)newL;
                            sumlx = slx;
                            suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        for (int i = 0; i < n; i++) L[i] += (sbyte)nmax;
        return sumlx / suml2;
    }
}
