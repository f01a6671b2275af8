using System.Text.Json;

namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp eval`: its table and JSON, and a one-line error for each bad argument.</summary>
public class EvalCommandTests
{
    private static readonly string Model = TestPaths.Model("stories260K.gguf");

    [Fact]
    public void JsonHasOneRunPerKvTypeWithEveryField()
    {
        var r = CliRunner.Run("eval", "-m", Model, "--generate", "300", "--kv-type", "f32,q8_0", "--kv-type", "q4_0", "--context", "256", "--json", "--threads", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal(300, root.GetProperty("tokens").GetInt32());
        Assert.Equal(256, root.GetProperty("context").GetInt32());
        var runs = root.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(["f32", "q8_0", "q4_0"], runs.Select(x => x.GetProperty("kv_type_k").GetString()));
        Assert.Equal(["f32", "q8_0", "q4_0"], runs.Select(x => x.GetProperty("kv_type_v").GetString()));
        Assert.All(runs, x => Assert.Equal("full", x.GetProperty("policy").GetString()));
        Assert.Equal(0, runs[0].GetProperty("mean_kl").GetDouble());
        Assert.Equal(1, runs[0].GetProperty("top1_agreement").GetDouble());
        Assert.True(runs[1].GetProperty("mean_kl").GetDouble() < runs[2].GetProperty("mean_kl").GetDouble());
        Assert.Equal([1280L, 480L, 320L], runs.Select(x => x.GetProperty("kv_bytes_per_token").GetInt64()));
        foreach (var run in runs)
        {
            Assert.InRange(run.GetProperty("perplexity").GetDouble(), 1, 100);
            Assert.Equal(256 * run.GetProperty("kv_bytes_per_token").GetInt64(), run.GetProperty("peak_kv_bytes").GetInt64());
            Assert.True(run.GetProperty("decode_tokens_per_s").GetDouble() > 0);
            Assert.Equal(2, run.GetProperty("segments").GetArrayLength());
        }
    }

    [Fact]
    public void TheTableGoesToStdoutForATextFile()
    {
        string file = Path.Combine(Path.GetTempPath(), $"kvsharp-eval-{Guid.NewGuid():N}.txt");
        File.WriteAllText(file, "Once upon a time, there was a little dog. The dog liked to run in the park with his friend.");
        try
        {
            var r = CliRunner.Run("eval", "-m", Model, "--text", file, "--kv-type", "q4_0", "--threads", "2");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("| policy |", r.Stdout);
            Assert.Matches(@"\| full\s+\|\s+all \| q4_0 \| q4_0 \|\s+\d+\.\d{4} \|", r.Stdout);
            Assert.Contains("tokens scored in 1 windows", r.Stderr);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void PoliciesRunOncePerPolicyAndTheSweepStretchesThemToEachBudget()
    {
        string plot = Path.Combine(Path.GetTempPath(), $"kvsharp-eval-{Guid.NewGuid():N}.svg");
        try
        {
            var r = CliRunner.Run("eval", "-m", Model, "--generate", "300", "--context", "256", "--policy", "full,window:32", "--policy", "sinks:4+window:28",
                "--json", "--threads", "2", "--plot", plot);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
            Assert.Equal(["full", "window:32", "sinks:4+window:28"], runs.Select(x => x.GetProperty("policy").GetString()));
            Assert.All(runs, x => Assert.Equal("f32", x.GetProperty("kv_type_k").GetString()));
            Assert.Equal(JsonValueKind.Null, runs[0].GetProperty("budget").ValueKind);
            Assert.Equal(32, runs[1].GetProperty("budget").GetInt32());
            Assert.Equal(0, runs[0].GetProperty("mean_kl").GetDouble());
            Assert.True(runs[1].GetProperty("mean_kl").GetDouble() > 0);
            // A window holds its budget plus a prefill chunk's rows (64), not the context.
            Assert.True(runs[1].GetProperty("peak_kv_bytes").GetInt64() < runs[0].GetProperty("peak_kv_bytes").GetInt64());
            Assert.All(runs, x => Assert.Equal(2, x.GetProperty("segments").GetArrayLength()));
            Assert.StartsWith("<?xml", File.ReadAllText(plot));
            Assert.Contains("sinks:4+window:28", File.ReadAllText(plot));

            var sweep = CliRunner.Run("eval", "-m", Model, "--generate", "200", "--context", "256", "--sweep", "--threads", "2");
            Assert.True(sweep.ExitCode == 0, sweep.Stderr);
            foreach (string policy in new[] { "full", "window:64", "window:128", "window:256", "sinks:4+window:60", "sinks:4+window:124", "sinks:4+window:252",
                         "h2o:64", "h2o:128", "h2o:256", "snapkv:64", "snapkv:128", "snapkv:256" })
                Assert.Matches($@"\| {policy.Replace("+", @"\+")}\s+\|", sweep.Stdout);
        }
        finally
        {
            File.Delete(plot);
        }
    }

    [Fact]
    public void AnEmptyTextFileIsNamed()
    {
        string file = Path.Combine(Path.GetTempPath(), $"kvsharp-eval-{Guid.NewGuid():N}.txt");
        File.WriteAllText(file, "");
        try
        {
            var r = CliRunner.Run("eval", "-m", Model, "--text", file, "--kv-type", "f16");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains($"error: --text {file}: the file has no text to score (it is empty)", r.Stderr);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void TheSweepLeavesOutBudgetsNotBelowTheContextAndSaysSo()
    {
        // stories260K's trained context, 128: budgets 64 and 128 run, 256 cannot.
        var r = CliRunner.Run("eval", "-m", Model, "--generate", "150", "--sweep", "--policy", "window:1", "--threads", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("[kvsharp] eval: --sweep skips budgets 256: more than the context of 128", r.Stderr);
        Assert.Matches(@"\| window:128\s+\|", r.Stdout);
        Assert.DoesNotContain("window:256", r.Stdout);
    }

    [Theory]
    [InlineData("--policy: cache policy 'window:0': the window must keep at least 1 position, got 0", "--generate", "10", "--policy", "window:0")]
    [InlineData("--policy: cache policy 'h2o': expected full", "--generate", "10", "--policy", "h2o")]
    [InlineData("--policy: cache policy 'window:300' keeps 300 positions, more than the context length of 256 (--context raises it)", "--generate", "10", "--context", "256", "--policy", "window:300")]
    [InlineData("--plot x.pdf: the file must end in .svg or .png", "--generate", "10", "--plot", "x.pdf")]
    [InlineData("eval needs a text: --text FILE or --generate N")]
    [InlineData("--text FILE or --generate N, not both", "--text", "x.txt", "--generate", "10")]
    [InlineData("--kv-type must be one of f32, f16, q8_0, q4_0, kivi4, kivi2; got 'q3'", "--generate", "10", "--kv-type", "f32,q3")]
    [InlineData("--context must be a whole number >= 2, got '1'", "--generate", "10", "--context", "1")]
    [InlineData("--generate must be a whole number >= 2, got '0'", "--generate", "0")]
    [InlineData("--text: file not found: no-such-file.txt", "--text", "no-such-file.txt")]
    [InlineData("--sweep: every budget (64/128/256 positions) is more than --context 48; give a --context of at least 64", "--generate", "10", "--context", "48", "--sweep")]
    public void BadArgumentsAreOneLineErrors(string message, params string[] args)
    {
        var r = CliRunner.Run(["eval", "-m", Model, .. args]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), line => line.StartsWith("error:"));
        Assert.Equal("", r.Stdout);
    }
}
