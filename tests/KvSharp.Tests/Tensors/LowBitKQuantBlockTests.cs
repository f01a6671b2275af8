using System.Buffers.Binary;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>Q3_K and Q2_K blocks built by hand from ggml's layouts (block_q3_K, block_q2_K), read back element by element.</summary>
public class LowBitKQuantBlockTests
{
    [Fact]
    public void Q3_KHandBuiltBlock()
    {
        // Sub-block k gets the scale k - 8 (stored k + 24: low nibble in byte k or high nibble of byte k - 8, the top
        // two bits at bits 2(k/4) of byte 96 + 8 + k%4). Element i = 128n + 32g + e: low bits (e + g + n) & 3 at bits
        // 2g of qs[32n + e]; its high bit (bit 4n + g of hmask[e]) set for even e, which makes q = low, else low - 4.
        var blk = new byte[110];
        for (int k = 0; k < 16; k++)
        {
            int stored = k + 24;
            blk[96 + k % 8] |= (byte)((stored & 0xF) << (k < 8 ? 0 : 4));
            blk[96 + 8 + k % 4] |= (byte)((stored >> 4) << (2 * (k / 4)));
        }
        for (int n = 0; n < 2; n++)
            for (int g = 0; g < 4; g++)
                for (int e = 0; e < 32; e++)
                {
                    blk[32 + 32 * n + e] |= (byte)(((e + g + n) & 3) << (2 * g));
                    if (e % 2 == 0) blk[e] |= (byte)(1 << (4 * n + g));
                }
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(108), BitConverter.HalfToUInt16Bits((Half)0.25f));

        var y = DequantizeRow(GgmlType.Q3_K, blk, 256);
        for (int i = 0; i < 256; i++)
        {
            int n = i / 128, g = i % 128 / 32, e = i % 32, k = 8 * n + 2 * g + e / 16;
            int q = ((e + g + n) & 3) - (e % 2 == 0 ? 0 : 4);
            Assert.True(0.25f * (k - 8) * q == y[i], $"element {i}: {y[i]}, expected {0.25f * (k - 8) * q}");
        }
    }

    [Fact]
    public void Q2_KHandBuiltBlock()
    {
        // Sub-block k: scale k % 16 in the low nibble, min 15 - k in the high one. Element i = 128n + 32g + e: quant
        // (e + 3g + n) & 3 at bits 2g of qs[32n + e]. x = d·scale·q − dmin·min with d = 0.5, dmin = 0.125.
        var blk = new byte[84];
        for (int k = 0; k < 16; k++) blk[k] = (byte)(k | ((15 - k) << 4));
        for (int n = 0; n < 2; n++)
            for (int g = 0; g < 4; g++)
                for (int e = 0; e < 32; e++)
                    blk[16 + 32 * n + e] |= (byte)(((e + 3 * g + n) & 3) << (2 * g));
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(80), BitConverter.HalfToUInt16Bits((Half)0.5f));
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(82), BitConverter.HalfToUInt16Bits((Half)0.125f));

        var y = DequantizeRow(GgmlType.Q2_K, blk, 256);
        for (int i = 0; i < 256; i++)
        {
            int n = i / 128, g = i % 128 / 32, e = i % 32, k = 8 * n + 2 * g + e / 16;
            float want = 0.5f * k * ((e + 3 * g + n) & 3) - 0.125f * (15 - k);
            Assert.True(want == y[i], $"element {i}: {y[i]}, expected {want}");
        }
    }
}
