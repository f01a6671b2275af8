namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp serve --inspector-interval-ms N`: faster than the server's minimum is a one-line error before anything loads.</summary>
public class InspectorIntervalOptionTests
{
    [Fact]
    public void AnIntervalBelowTheMinimumIsAOneLineError()
    {
        var r = CliRunner.Run(["serve", "-m", TestPaths.Model("stories260K.gguf"), "--port", "0", "--inspector-interval-ms", "50"]);
        CliOptionErrorTests.AssertOneLineError(r, "--inspector-interval-ms must be a whole number >= 100, got '50'");
    }
}
