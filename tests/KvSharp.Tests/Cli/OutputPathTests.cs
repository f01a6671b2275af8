namespace KvSharp.Tests.Cli;

/// <summary>
/// A path a command reads or writes is checked before the work: a directory where a file goes, a parent directory that
/// does not exist, a file where a directory goes, is one line naming the option, the path and what belongs there, not
/// .NET's "Access to the path is denied" or "The file already exists".
/// </summary>
public sealed class OutputPathTests : IDisposable
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-output-path-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("run", "--file", "a text file (or - for standard input)")]
    [InlineData("eval", "--text", "a text file")]
    public void ADirectoryWhereATextFileGoesIsNotCalledAModel(string command, string option, string wanted)
    {
        var r = CliRunner.Run(command, "-m", Stories, option, _dir);
        CliOptionErrorTests.AssertOneLineError(r, $"{option} {_dir} is a directory; give {wanted}");
    }

    [Fact]
    public void LogitsOutIsNotADirectory()
    {
        var r = CliRunner.Run("logits", "-m", Stories, "--tokens", "1,2", "--out", _dir);
        CliOptionErrorTests.AssertOneLineError(r, $"--out {_dir} is a directory; give a file name inside it");
    }

    [Theory]
    [InlineData("logits", "--out", "x.f32", "--tokens", "1,2")]
    [InlineData("eval", "--plot", "x.svg", "--generate", "8", "--kv-type", "f16")]
    [InlineData("run", "--prompt-cache", "x.kvs", "-p", "hi", "-n", "2")]
    public void AMissingParentDirectoryIsNamed(string command, string option, string file, params string[] rest)
    {
        string missing = Path.Combine(_dir, "missing");
        var r = CliRunner.Run([command, "-m", Stories, option, Path.Combine(missing, file), .. rest]);
        CliOptionErrorTests.AssertOneLineError(r, $"{option} {Path.Combine(missing, file)}: the directory {missing} does not exist");
    }

    [Theory]
    [InlineData("--kv-tier-disk")]
    [InlineData("--session-dir")]
    public void ServeDirectoriesAreNotFiles(string option)
    {
        string file = Path.Combine(_dir, "a-file");
        File.WriteAllText(file, "not a directory");
        var r = CliRunner.Run("serve", "-m", Stories, "--port", "0", option, file);
        CliOptionErrorTests.AssertOneLineError(r, $"{option} {file} is a file; give a directory (it is created if missing)");
    }

    [Fact]
    public void ABadHostIsOneLineWithoutTheExposureWarning()
    {
        var r = CliRunner.Run("serve", "-m", Stories, "--port", "0", "--host", "not-an-address");
        CliOptionErrorTests.AssertOneLineError(r, "--host not-an-address is not an IP address or 'localhost'");
    }
}
