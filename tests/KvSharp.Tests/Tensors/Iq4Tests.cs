using System.Buffers.Binary;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>The non-linear 4-bit types: known blocks decode to ggml's values, and the quantizer finds exact grids.</summary>
public class Iq4Tests
{
    private static readonly sbyte[] Levels = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    [Fact]
    public void Iq4NlBlockDecodesToScaledLevels()
    {
        var blk = new byte[18];
        BinaryPrimitives.WriteUInt16LittleEndian(blk, 0x3800); // f16 0.5
        for (int j = 0; j < 16; j++) blk[2 + j] = (byte)(j | ((15 - j) << 4));
        float[] y = DequantizeRow(GgmlType.IQ4_NL, blk, 32);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(0.5f * Levels[j], y[j]);
            Assert.Equal(0.5f * Levels[15 - j], y[j + 16]);
        }
    }

    [Fact]
    public void Iq4XsBlockDecodesWithSixBitSubBlockScales()
    {
        var blk = new byte[136];
        BinaryPrimitives.WriteUInt16LittleEndian(blk, 0x3800); // f16 0.5
        int[] ls = [0, 1, 31, 32, 33, 47, 48, 63]; // stored scales; the sub-block scale is d * (ls - 32)
        ushort sh = 0;
        for (int ib = 0; ib < 8; ib++)
        {
            blk[4 + ib / 2] |= (byte)((ls[ib] & 0xF) << (4 * (ib % 2)));
            sh |= (ushort)((ls[ib] >> 4) << (2 * ib));
        }
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(2), sh);
        for (int i = 0; i < 128; i++) blk[8 + i] = (byte)((i % 16) | ((15 - i % 16) << 4));
        float[] y = DequantizeRow(GgmlType.IQ4_XS, blk, 256);
        for (int ib = 0; ib < 8; ib++)
            for (int j = 0; j < 16; j++)
            {
                float dl = 0.5f * (ls[ib] - 32);
                Assert.Equal(dl * Levels[j], y[32 * ib + j]);
                Assert.Equal(dl * Levels[15 - j], y[32 * ib + 16 + j]);
            }
    }

    [Fact]
    public void Iq4NlQuantizerFindsAnExactGrid()
    {
        // Values on the grid 2 * level (the largest magnitude negative) are found by the scale search exactly.
        float[] x = new float[64];
        for (int i = 0; i < x.Length; i++) x[i] = 2f * Levels[(i * 7) % 16];
        Assert.Equal(x, DequantizeRow(GgmlType.IQ4_NL, QuantizeRow(GgmlType.IQ4_NL, x), x.Length));
    }
}
