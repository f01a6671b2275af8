using System.Text.Json;

namespace KvSharp.Tests.Cli;

/// <summary>
/// --kv-type-k and --kv-type-v (llama.cpp's -ctk / -ctv) on the commands that keep a KV cache: each side its own type,
/// --kv-type for both, and a one-line error where --kv-type and a side disagree.
/// </summary>
public class KvTypeOptionTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Fact]
    public void RunStoresKeysAndValuesAsTheirOwnTypes()
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "8", "--threads", "2", "--kv-type-k", "f16", "--kv-type-v", "q8_0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // 5 layers x 4 kv heads x (F16 key 16 bytes + Q8_0 value 8 bytes and a 4-byte scale).
        Assert.Contains("KV cache (F16/Q8_0): 560 bytes/token", r.Stderr);
        var agreeing = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "8", "--threads", "2", "--kv-type", "q8_0", "--kv-type-k", "Q8");
        Assert.True(agreeing.ExitCode == 0, agreeing.Stderr);
        Assert.Contains("KV cache (Q8_0): 480 bytes/token", agreeing.Stderr);
        var oneSide = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "8", "--threads", "2", "--kv-type-v", "q4_0");
        Assert.Contains("KV cache (F32/Q4_0): ", oneSide.Stderr);
    }

    [Theory]
    [InlineData("run", "--kv-type-k f16 contradicts --kv-type q8_0, which sets keys and values; give --kv-type-k and --kv-type-v without --kv-type", "--kv-type", "q8_0", "--kv-type-k", "f16")]
    [InlineData("chat", "--kv-type-v f32 contradicts --kv-type f16, which sets keys and values; give --kv-type-k and --kv-type-v without --kv-type", "--kv-type", "f16", "--kv-type-v", "f32")]
    [InlineData("run", "--kv-type-v must be one of f32, f16, q8_0, q4_0, kivi4, kivi2; got 'q3'", "--kv-type-v", "q3")]
    [InlineData("serve", "--kv-type-k must be one of f32, f16, q8_0, q4_0, kivi4, kivi2; got 'x'", "--kv-type-k", "x")]
    [InlineData("bench", "--kv-type-k q4_0 contradicts --kv-type f32, which sets keys and values; give --kv-type-k and --kv-type-v without --kv-type", "--kv-type", "f32", "--kv-type-k", "q4_0")]
    public void ConflictsAndBadNamesAreOneLineErrors(string command, string expected, params string[] options)
    {
        string[] prompt = command == "run" ? ["-p", "hi"] : [];
        var r = CliRunner.Run([command, "-m", Stories, .. prompt, .. options]);
        CliOptionErrorTests.AssertOneLineError(r, expected);
    }

    [Fact]
    public void BenchReportsEachSidesTypeAndRefusesKiviInBlocksThatSplitItsGroups()
    {
        var r = CliRunner.Run("bench", "--model", Stories, "--scenario", "speed", "-p", "8", "-n", "4", "-r", "1", "--warmup", "0",
            "--threads", "2", "--kv-type-k", "f16", "--kv-type-v", "q8_0", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal("f16/q8_0", doc.RootElement.GetProperty("kv_type").GetString());
        Assert.Equal("f16", doc.RootElement.GetProperty("kv_type_k").GetString());
        Assert.Equal("q8_0", doc.RootElement.GetProperty("kv_type_v").GetString());
        Assert.Contains("KV cache: 560 bytes/token (F16 K, Q8_0 V)", r.Stderr);
        var paged = CliRunner.Run("bench", "--model", Stories, "--scenario", "concurrency", "-p", "8", "-n", "4", "-r", "1", "--warmup", "0",
            "--threads", "2", "--kv-type", "kivi4", "--block-size", "16");
        Assert.Equal(1, paged.ExitCode);
        Assert.Contains("error: block size 16 cannot hold Kivi4", paged.Stderr); // after the model's description
    }

    [Fact]
    public void EvalRunsEveryKeyTypeWithEveryValueType()
    {
        var r = CliRunner.Run("eval", "-m", Stories, "--generate", "120", "--kv-type-k", "f16,q8_0", "--kv-type-v", "q4_0", "--context", "128", "--json", "--threads", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(["f16", "q8_0"], runs.Select(x => x.GetProperty("kv_type_k").GetString()));
        Assert.Equal(["q4_0", "q4_0"], runs.Select(x => x.GetProperty("kv_type_v").GetString()));
        // 5 layers x 4 heads x (key 16 or 8 + 4, value 4 + 4).
        Assert.Equal([480L, 400L], runs.Select(x => x.GetProperty("kv_bytes_per_token").GetInt64()));
        Assert.All(runs, x => Assert.True(x.GetProperty("mean_kl").GetDouble() > 0));
    }
}
