using KvSharp.Gguf;

namespace KvSharp.Tests.Gguf;

/// <summary>Truncated, corrupted and mutated files must fail with a GgufFormatException that says what is wrong.</summary>
public class GgufCorruptionTests
{
    private static byte[] Original => File.ReadAllBytes(TestPaths.Fixture("llama-gqa.Q4_0.gguf"));

    /// <summary>Opens <paramref name="bytes"/> as a GGUF file; the exception it threw, or null.</summary>
    internal static Exception? OpenBytes(byte[] bytes)
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, bytes);
            using var g = GgufFile.Open(path);
            return null;
        }
        catch (Exception e) { return e; }
        finally { File.Delete(path); }
    }

    [Fact]
    public void BadMagicSaysItIsNotGguf()
    {
        var b = Original;
        b[0] = (byte)'X';
        var e = Assert.IsType<GgufFormatException>(OpenBytes(b));
        Assert.Contains("not a GGUF file", e.Message);
    }

    [Fact]
    public void UnsupportedVersionIsNamed()
    {
        var b = Original;
        b[4] = 9;
        var e = Assert.IsType<GgufFormatException>(OpenBytes(b));
        Assert.Contains("version 9", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    [InlineData(23)]
    [InlineData(100)]
    [InlineData(5000)]
    [InlineData(20000)]
    public void TruncatedHeaderIsReported(int length)
    {
        var e = OpenBytes(Original[..length]);
        Assert.IsType<GgufFormatException>(e);
        Assert.Matches("truncated|too small", e!.Message);
    }

    [Fact]
    public void TruncatedTensorDataIsReported()
    {
        var b = Original;
        var e = Assert.IsType<GgufFormatException>(OpenBytes(b[..(b.Length - 100)]));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("tensor '", e.Message);
    }

    [Fact]
    public void UnknownTensorTypeIsNamed()
    {
        using var g = GgufFile.Open(TestPaths.Fixture("llama-gqa.Q4_0.gguf"));
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.AddTensor("weird", KvSharp.Tensors.GgmlType.F32, [4], new byte[16]);
        var ms = new MemoryStream();
        w.Write(ms);
        var bytes = ms.ToArray();
        // The tensor type field sits right before the 8-byte offset at the end of the single tensor info.
        int typePos = bytes.AsSpan().IndexOf("weird"u8) + 5 + 4 + 8;
        BitConverter.TryWriteBytes(bytes.AsSpan(typePos), 77u);
        var e = Assert.IsType<GgufFormatException>(OpenBytes(bytes));
        Assert.Contains("unknown type number 77", e.Message);
        Assert.Contains("'weird'", e.Message);
    }

    /// <summary>
    /// Many random single-byte and 8-byte mutations of the header: opening must either succeed (the mutation hit
    /// something harmless, like a metadata value) or throw GgufFormatException — never another exception type,
    /// a hang, or an out-of-memory from trusting a huge count.
    /// </summary>
    [Fact]
    public void RandomHeaderMutationsNeverCrash()
    {
        var original = Original;
        using var g = GgufFile.Open(TestPaths.Fixture("llama-gqa.Q4_0.gguf"));
        int headerEnd = (int)g.DataOffset;
        var rng = new Random(1234);
        string path = Path.GetTempFileName();
        int rejected = 0;
        try
        {
            for (int i = 0; i < 600; i++)
            {
                var b = (byte[])original.Clone();
                int pos = rng.Next(headerEnd);
                switch (rng.Next(3))
                {
                    case 0: b[pos] = (byte)rng.Next(256); break;
                    case 1: for (int k = 0; k < 8 && pos + k < headerEnd; k++) b[pos + k] = 0xFF; break;
                    default: b[pos] ^= (byte)(1 << rng.Next(8)); break;
                }
                File.WriteAllBytes(path, b);
                try
                {
                    using var m = GgufFile.Open(path);
                }
                catch (GgufFormatException)
                {
                    rejected++;
                }
            }
        }
        finally { File.Delete(path); }
        Assert.InRange(rejected, 1, 600);
    }
}
