using KvSharp.Cli;

namespace KvSharp.Tests.Cli;

/// <summary>The top-level handler: any exception is one stderr line; what a user caused exits 1, a bug exits 2.</summary>
public class CliErrorsTests
{
    [Fact]
    public void LibraryArgumentErrorsLoseTheirDotNetDecoration()
    {
        var e = new ArgumentOutOfRangeException("options", -1, "max tokens must be >= 0");
        Assert.Equal("max tokens must be >= 0 (got -1)", CliErrors.Message(e));
        Assert.Equal("bad value", CliErrors.Message(new ArgumentException("bad value", "text")));
        Assert.Equal("two lines in one", CliErrors.Message(new InvalidOperationException("two lines\nin one")));
    }

    [Fact]
    public void UserErrorsExitOneAndBugsExitTwoOnOneLine()
    {
        var stderr = new StringWriter();
        Assert.Equal(CliErrors.UserError, CliErrors.Run(() => throw new KvSharp.Models.ModelFormatException("tensor x is truncated"), stderr));
        Assert.Equal(CliErrors.InternalError, CliErrors.Run(() => throw new IndexOutOfRangeException("index 7"), stderr));
        Assert.Equal(CliErrors.InternalError, CliErrors.Run(() => checked(int.MaxValue + int.Parse("1")), stderr));
        var lines = stderr.ToString().TrimEnd('\n').Split('\n');
        Assert.Equal("error: tensor x is truncated", lines[0]);
        Assert.StartsWith("error: internal error (IndexOutOfRangeException): index 7 (KVSHARP_TRACE=1", lines[1]);
        Assert.StartsWith("error: internal error (OverflowException): ", lines[2]);
        Assert.Equal(3, lines.Length);
    }
}
