using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Gguf;

public class GgufWriterTests
{
    [Fact]
    public void RoundTripsEveryValueTypeAndTensors()
    {
        var w = new GgufWriter(alignment: 64);
        w.Add("u8", new GgufValue(GgufValueType.UInt8, (byte)200))
         .Add("i8", new GgufValue(GgufValueType.Int8, (sbyte)-5))
         .Add("u16", new GgufValue(GgufValueType.UInt16, (ushort)60000))
         .Add("i16", new GgufValue(GgufValueType.Int16, (short)-30000))
         .Add("u32", 4000000000u)
         .Add("i32", GgufValue.Of(-7))
         .Add("f32", 1.5f)
         .Add("bool", true)
         .Add("str", "héllo ✓")
         .Add("u64", GgufValue.Of(ulong.MaxValue))
         .Add("i64", new GgufValue(GgufValueType.Int64, long.MinValue))
         .Add("f64", new GgufValue(GgufValueType.Float64, Math.PI))
         .Add("arr.s", GgufValue.Of(new[] { "a", "", "ß" }))
         .Add("arr.f", GgufValue.Of(new[] { 1f, -2f }))
         .Add("arr.i", GgufValue.Of(new[] { 3, 4, 5 }));
        w.AddTensor("a", [4, 2], [1f, 2, 3, 4, 5, 6, 7, 8]);
        w.AddTensor("b", GgmlType.Q8_0, [32], new byte[34]);
        string path = Path.GetTempFileName();
        try
        {
            w.Write(path);
            using var g = GgufFile.Open(path);
            Assert.Equal(3u, g.Version);
            Assert.Equal(64, g.Alignment);
            Assert.Equal((byte)200, g.Metadata["u8"].Value);
            Assert.Equal((sbyte)-5, g.Metadata["i8"].Value);
            Assert.Equal((ushort)60000, g.Metadata["u16"].Value);
            Assert.Equal((short)-30000, g.Metadata["i16"].Value);
            Assert.Equal(4000000000u, g.Metadata["u32"].Value);
            Assert.Equal(-7, g.Metadata["i32"].Value);
            Assert.Equal(1.5f, g.Metadata["f32"].Value);
            Assert.Equal(true, g.Metadata["bool"].Value);
            Assert.Equal("héllo ✓", g.GetStringOrNull("str"));
            Assert.Equal(ulong.MaxValue, g.Metadata["u64"].Value);
            Assert.Equal(long.MinValue, g.Metadata["i64"].Value);
            Assert.Equal(Math.PI, g.Metadata["f64"].Value);
            Assert.Equal(["a", "", "ß"], g.GetStringArray("arr.s")!);
            Assert.Equal([1f, -2f], g.GetFloatArray("arr.f")!);
            Assert.Equal([3, 4, 5], g.GetInt32Array("arr.i")!);
            Assert.Equal(["general.alignment", "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "u64", "i64", "f64", "arr.s", "arr.f", "arr.i"], g.MetadataKeys);
            var a = g.GetTensor("a");
            Assert.Equal([4L, 2L], a.Dimensions);
            Assert.Equal([1f, 2, 3, 4, 5, 6, 7, 8], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(g.GetTensorBytes(a)).ToArray());
            Assert.Equal(0, g.GetTensor("b").Offset % 64);
            Assert.Equal(GgmlType.Q8_0, g.GetTensor("b").Type);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void RewritingAFixtureReproducesItByteForByte()
    {
        string source = TestPaths.Model("stories260K.gguf");
        using var g = GgufFile.Open(source);
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
            if (key != "general.alignment") w.Add(key, g.Metadata[key]);
        foreach (var t in g.Tensors) w.AddTensor(t.Name, t.Type, t.Dimensions, g.GetTensorBytes(t).ToArray());
        var ms = new MemoryStream();
        w.Write(ms);
        var original = File.ReadAllBytes(source);
        Assert.Equal(original.Length, ms.Length);
        Assert.True(original.AsSpan().SequenceEqual(ms.ToArray()));
    }

    [Fact]
    public void RejectsTensorDataOfTheWrongSize()
    {
        var w = new GgufWriter();
        var ex = Assert.Throws<ArgumentException>(() => w.AddTensor("t", GgmlType.F32, [3], new byte[8]));
        Assert.Contains("needs 12 bytes", ex.Message);
    }
}
