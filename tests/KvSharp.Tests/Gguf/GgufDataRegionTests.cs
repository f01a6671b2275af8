using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Gguf;

/// <summary>Tensor data must lie in the file without overlapping, and names from a damaged file are shown escaped and short.</summary>
public class GgufDataRegionTests
{
    /// <summary>Two tensors: "tensor_one" F16 [32] (64 bytes at data offset 0) and "tensor_two" F32 [16] (at 64).</summary>
    private static byte[] TwoTensors(string firstName = "tensor_one")
    {
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.AddTensor(firstName, GgmlType.F16, [32], new byte[64]);
        w.AddTensor("tensor_two", GgmlType.F32, [16], new byte[64]);
        var ms = new MemoryStream();
        w.Write(ms);
        return ms.ToArray();
    }

    /// <summary>Where a tensor's info fields start: after its name (8-byte length + bytes); one dimension.</summary>
    private static int InfoField(byte[] bytes, string name, string field)
    {
        int at = bytes.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(name)) + System.Text.Encoding.UTF8.GetByteCount(name);
        return at + field switch { "type" => 4 + 8, "offset" => 4 + 8 + 4, _ => throw new ArgumentException(field) };
    }

    private static Exception? Open(byte[] bytes) => GgufCorruptionTests.OpenBytes(bytes);

    [Fact]
    public void TheUndamagedFileOpens() => Assert.Null(Open(TwoTensors()));

    [Fact]
    public void OffsetPointingIntoAnotherTensorIsRejected()
    {
        var b = TwoTensors();
        BitConverter.TryWriteBytes(b.AsSpan(InfoField(b, "tensor_two", "offset")), 32UL);
        var e = Assert.IsType<GgufFormatException>(Open(b));
        Assert.Contains("tensor 'tensor_one' (F16 [32], 64 bytes at data offset 0) overlaps tensor 'tensor_two' at data offset 32", e.Message);
    }

    [Fact]
    public void TypeThatMakesATensorRunIntoTheNextIsRejected()
    {
        var b = TwoTensors();
        BitConverter.TryWriteBytes(b.AsSpan(InfoField(b, "tensor_one", "type")), (uint)GgmlType.F32);
        var e = Assert.IsType<GgufFormatException>(Open(b));
        Assert.Contains("tensor 'tensor_one' (F32 [32], 128 bytes at data offset 0) overlaps tensor 'tensor_two' at data offset 64", e.Message);
    }

    [Fact]
    public void ShapeLargerThanTheFileIsRejectedWithoutOverflow()
    {
        var b = TwoTensors();
        BitConverter.TryWriteBytes(b.AsSpan(InfoField(b, "tensor_two", "type") - 8), 1UL << 62);
        var e = Assert.IsType<GgufFormatException>(Open(b));
        Assert.Contains("more than the", e.Message);
    }

    [Fact]
    public void DamagedNamesAreEscapedAndShortened()
    {
        string junk = "\n\u0001" + new string('A', 3000);
        var b = TwoTensors(junk);
        BitConverter.TryWriteBytes(b.AsSpan(InfoField(b, junk, "type")), 77u);
        var e = Assert.IsType<GgufFormatException>(Open(b));
        Assert.Contains("unknown type number 77", e.Message);
        Assert.Contains("'\\x0A\\x01AAAA", e.Message);
        Assert.Contains("... (3002 bytes)'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(e.Message.Length < 400, e.Message);
    }

    [Theory]
    [InlineData("blk.0.attn_q.weight", "blk.0.attn_q.weight")]
    [InlineData("tab\there", "tab\\x09here")]
    [InlineData("bell\u0007\u007F", "bell\\x07\\x7F")]
    [InlineData("zero\u200Bwidth", "zero\\u200Bwidth")]
    public void PrintableTextEscapesWhatATerminalWouldNotShow(string text, string shown) => Assert.Equal(shown, PrintableText.Of(text));

    [Fact]
    public void PrintableTextCutsLongTextAndSaysHowLongItWas()
    {
        string shown = PrintableText.Of(new string('é', 100));
        Assert.Equal(new string('é', PrintableText.MaxChars) + "... (200 bytes)", shown);
    }
}
