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
    public void Iq4NlQuantizerFindsAnExactGrid()
    {
        // Values on the grid 2 * level (the largest magnitude negative) are found by the scale search exactly.
        float[] x = new float[64];
        for (int i = 0; i < x.Length; i++) x[i] = 2f * Levels[(i * 7) % 16];
        Assert.Equal(x, DequantizeRow(GgmlType.IQ4_NL, QuantizeRow(GgmlType.IQ4_NL, x), x.Length));
    }
}
