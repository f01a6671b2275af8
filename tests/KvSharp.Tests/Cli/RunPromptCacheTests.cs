namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp run --prompt-cache FILE`: the first run writes the file; a later run whose prompt starts with the saved tokens skips their prefill and prints what a run without the cache prints.</summary>
public sealed class RunPromptCacheTests : IDisposable
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-prompt-cache-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static CliRunner.Result Run(string prompt, params string[] more) =>
        CliRunner.Run(["run", "-m", Stories, "-p", prompt, "-n", "12", "--context", "128", "--threads", "2", .. more]);

    [Fact]
    public void ASecondRunRestoresTheSharedPrefixAndPrintsTheSameText()
    {
        string file = Path.Combine(_dir, "prompt.kvs");
        const string first = "Once upon a time, there was a little dog named Max.", second = first + " He liked to";
        var written = Run(first, "--prompt-cache", file);
        Assert.Equal(0, written.ExitCode);
        Assert.Contains("does not exist yet", written.Stderr);
        Assert.True(File.Exists(file));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp-*"));

        var cached = Run(second, "--prompt-cache", file);
        var plain = Run(second);
        Assert.Equal(0, cached.ExitCode);
        Assert.Equal(plain.Stdout, cached.Stdout);
        Assert.Matches(@"prompt cache .*: (\d+) of \d+ prompt tokens restored", cached.Stderr);
        int restored = int.Parse(System.Text.RegularExpressions.Regex.Match(cached.Stderr, @"(\d+) of \d+ prompt tokens restored").Groups[1].Value);
        Assert.True(restored > 10, cached.Stderr);
    }

    [Fact]
    public void AFileOfTheSameWeightsWithAnotherShapeNamesOnlyTheFieldsThatDiffer()
    {
        // The llama2.c checkpoint holds stories260K's weights, but its header says a context of 512, the GGUF's metadata 128.
        string file = Path.Combine(_dir, "gguf.kvs");
        Assert.Equal(0, Run("Zoo", "--prompt-cache", file).ExitCode);
        var r = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.bin"), "--tokenizer", TestPaths.Model("tok512.bin"), "-p", "Zoo", "-n", "2",
            "--prompt-cache", file);
        CliOptionErrorTests.AssertOneLineError(r, $"--prompt-cache {file}: session file was saved from another model: shape TrainedContextLength 128 vs 512 (file vs loaded model)");
    }

    [Fact]
    public void AFileOfAnotherKvTypeIsAOneLineErrorNamingTheFile()
    {
        string file = Path.Combine(_dir, "f32.kvs");
        Assert.Equal(0, Run("Zoo", "--prompt-cache", file).ExitCode);
        var r = Run("Zoo", "--prompt-cache", file, "--kv-type", "f16");
        CliOptionErrorTests.AssertOneLineError(r, $"--prompt-cache {file}: session file holds a F32 KV cache but this session stores F16");
    }

    [Theory]
    [InlineData("--kv-policy", "window:16", "cache policy 'window:16'")]
    [InlineData("--kv-policy", "h2o:16", "cache policy 'h2o:16'")]
    [InlineData("--kv-type", "kivi4", "KV type KIVI4")]
    public void ASessionThatCannotBeSavedIsRefusedBeforeAnythingIsGenerated(string option, string value, string named)
    {
        string file = Path.Combine(_dir, "never.kvs");
        var r = Run("Once upon a time", "--prompt-cache", file, option, value);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(named, r.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("", r.Stdout.Trim());
        Assert.False(File.Exists(file));
    }
}
