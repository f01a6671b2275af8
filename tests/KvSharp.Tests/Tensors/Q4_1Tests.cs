using System.Buffers.Binary;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

public class Q4_1Tests
{
    [Fact]
    public void BlockDecodesToScaleTimesNibblePlusMin()
    {
        var blk = new byte[20];
        BinaryPrimitives.WriteUInt16LittleEndian(blk, 0x3800); // d = 0.5
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(2), 0xC000); // m = -2
        for (int j = 0; j < 16; j++) blk[4 + j] = (byte)(j | ((15 - j) << 4));
        float[] y = DequantizeRow(GgmlType.Q4_1, blk, 32);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(0.5f * j - 2, y[j]);
            Assert.Equal(0.5f * (15 - j) - 2, y[j + 16]);
        }
    }

    [Fact]
    public void QuantizerMapsMinAndMaxToTheEndsOfTheRange()
    {
        // min -2, max 5.5: d = 0.5, every multiple of 0.5 in between is exact.
        float[] x = new float[32];
        for (int i = 0; i < 32; i++) x[i] = -2f + 0.5f * (i % 16);
        var q = QuantizeRow(GgmlType.Q4_1, x);
        Assert.Equal(x, DequantizeRow(GgmlType.Q4_1, q, 32));
        Assert.Equal(0x3800, BinaryPrimitives.ReadUInt16LittleEndian(q));
    }
}
