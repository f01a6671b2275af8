namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp serve --kv-tier-disk DIR --kv-tier-disk-mib N`: a budget without a directory, or a zero budget, is a one-line error.</summary>
public class KvTierCliOptionTests
{
    [Theory]
    [InlineData("--kv-tier-disk-mib 64", "--kv-tier-disk-mib needs --kv-tier-disk DIR")]
    [InlineData("--kv-tier-disk-mib 0", "--kv-tier-disk-mib must be a whole number >= 1, got '0'")]
    public void BadTierOptionsAreOneLineErrors(string options, string expected)
    {
        var r = CliRunner.Run(["serve", "-m", TestPaths.Model("stories260K.gguf"), "--port", "0", .. options.Split(' ')]);
        CliOptionErrorTests.AssertOneLineError(r, expected);
    }
}
