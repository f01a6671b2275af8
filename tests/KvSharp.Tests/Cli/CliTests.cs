namespace KvSharp.Tests.Cli;

public class CliTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Fact]
    public void RunStreamsOnlyTheGeneratedTextToStdout()
    {
        var r = CliRunner.Run("run", "--model", Stories, "--prompt", "Zoo", "--max-tokens", "57", "--context", "512", "--threads", "2");
        Assert.Equal(0, r.ExitCode);
        string golden = File.ReadAllText(TestPaths.Model("golden-zoo-60.txt")).TrimEnd('\n');
        Assert.Equal(golden, "Zoo" + r.Stdout.TrimEnd('\n'));
        Assert.Contains("tok/s", r.Stderr);
        Assert.Contains("bytes/token", r.Stderr);
        Assert.Contains("exceeds the model's trained context length 128", r.Stderr);
    }

    [Fact]
    public void RunWithoutCacheGivesTheSameText()
    {
        var cached = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "30", "--cache", "contiguous");
        var none = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "30", "--cache", "none");
        Assert.Equal(0, none.ExitCode);
        Assert.Equal(cached.Stdout, none.Stdout);
    }

    [Fact]
    public void RunsALlama2cCheckpointWithItsTokenizer()
    {
        var r = CliRunner.Run("run", "--model", TestPaths.Model("stories260K.bin"), "--tokenizer", TestPaths.Model("tok512.bin"),
            "--prompt", "Zoo", "--max-tokens", "57");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(File.ReadAllText(TestPaths.Model("golden-zoo-60.txt")).TrimEnd('\n'), "Zoo" + r.Stdout.TrimEnd('\n'));
    }

    [Fact]
    public void TokenizePrintsIdsAndWorksOnVocabOnlyFiles()
    {
        var r = CliRunner.Run("tokenize", "--model", Stories, "--text", "Zoo");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("1 410 469 347", r.Stdout.Trim());
        var gpt2 = CliRunner.Run("tokenize", "--model", TestPaths.Fixture("tokenizer/ggml-vocab-gpt-2.gguf"), "--text", "Hello world");
        Assert.Equal(0, gpt2.ExitCode);
        Assert.Equal("15496 995", gpt2.Stdout.Trim());
    }

    [Fact]
    public void RunningAVocabOnlyFileSaysWhatItIsForInsteadOfAMissingTensor()
    {
        string vocab = TestPaths.Fixture("tokenizer/ggml-vocab-llama-spm.gguf");
        var r = CliRunner.Run("run", "--model", vocab, "--prompt", "hi");
        CliOptionErrorTests.AssertOneLineError(r, $"{vocab}: a vocab-only GGUF file (no tensors): it can tokenize (kvsharp tokenize --model) but has no weights to run");
    }

    [Fact]
    public void InspectReportsKvBytesByTheFormula()
    {
        var r = CliRunner.Run("inspect", TestPaths.Fixture("llama-gqa.Q4_K_M.gguf"));
        Assert.Equal(0, r.ExitCode);
        // 2 x 2 layers x 2 kv heads x 32 head dim x 4 bytes = 1024 bytes per token; 512 context = 524288.
        Assert.Contains("= 1,024 bytes", r.Stdout);
        Assert.Contains("full context of 512: 524,288 bytes", r.Stdout);
        Assert.Contains("grouped-query", r.Stdout);
        Assert.Contains("Q4_K", r.Stdout);
        Assert.Contains("static 524,288 bytes", r.Stdout);
    }

    /// <summary>
    /// A Gemma 3 file (derived from llama-gqa: 6 layers of 1,024 bytes a token, F32 KV, 5 local through a window of 24)
    /// and a mixture of experts: inspect names the window, the norms and the experts, and what a session's cache, whose
    /// local layers keep a ring of their window, needs.
    /// </summary>
    [Fact]
    public void InspectDescribesLayerWindowsAndExperts()
    {
        var r = CliRunner.Run("inspect", Models.ArchitectureVariants.Path(Models.ArchitectureVariants.Gemma3F32));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("architecture: gemma3", r.Stdout);
        Assert.Contains("sliding window 24, per-head q/k norm", r.Stdout);
        // 2 x 6 layers x 2 kv heads x 32 x 4 = 3,072 bytes a token; 1 global layer x 512 + 5 local x a ring of 320 (24 + 256 + 32,
        // rounded to a tile) = 2,112 layer-positions of 512 bytes.
        Assert.Contains("5 of 6 layers attend through a window of 24: in a session they keep a ring of 320 positions", r.Stdout);
        Assert.Contains("so the full context needs 1,081,344 bytes", r.Stdout);

        r = CliRunner.Run("inspect", Models.ArchitectureVariants.Path(Models.ArchitectureVariants.Gpt2F32));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("learned position embeddings (no rope), layer norm (with biases) eps 1E-05", r.Stdout);
        r = CliRunner.Run("inspect", Models.ArchitectureVariants.Path(Models.ArchitectureVariants.Phi2F32));
        Assert.Contains("rope NeoX base 10000 dims 16, layer norm (with biases) eps 1E-05, trained context 512, attention and feed-forward in parallel", r.Stdout);

        r = CliRunner.Run("inspect", Models.ArchitectureVariants.Path(Models.ArchitectureVariants.Qwen3MoeQ8));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("mixture of 8 experts, 3 per token, expert ffn 768, chosen weights normalised", r.Stdout);

        // deepseek2 (2 layers, 8 heads, latent 64 + rope 16): one row a token, the values the keys, against each head's
        // key (32 + 16) and value (32) expanded.
        r = CliRunner.Run("inspect", Models.ArchitectureVariants.Path(Models.ArchitectureVariants.DeepSeek2F32));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("per token: 1 x 2 x 1 x 80 x 4 (F32) = 640 bytes", r.Stdout);
        Assert.Contains("with each head's key and value expanded (8 x (48 + 32)) it would be", r.Stdout);
        Assert.Contains("bytes: 8x more", r.Stdout);
        Assert.DoesNotContain("without GQA", r.Stdout);
    }

    /// <summary>
    /// `run` on the Gemma 3 file past its local layers' ring (320 positions): the same text as with --swa-full, which keeps
    /// every position, in less memory, and stderr says the local layers keep a ring.
    /// </summary>
    [Fact]
    public void RunKeepsTheLocalLayersRingUnlessSwaFull()
    {
        string path = Models.ArchitectureVariants.Path(Models.ArchitectureVariants.Gemma3F32);
        var ring = CliRunner.Run("run", "-m", path, "--prompt", "Once upon a time", "-n", "400", "--threads", "2");
        var full = CliRunner.Run("run", "-m", path, "--prompt", "Once upon a time", "-n", "400", "--threads", "2", "--swa-full");
        Assert.Equal((0, 0), (ring.ExitCode, full.ExitCode));
        Assert.Equal(full.Stdout, ring.Stdout);
        Assert.Contains("1081344 bytes allocated (the local layers keep a ring of 320 positions)", ring.Stderr);
        Assert.Contains("1572864 bytes allocated", full.Stderr);
        Assert.DoesNotContain("ring", full.Stderr);
    }

    [Theory]
    [InlineData("batch")]
    [InlineData("sequential")]
    public void LogitsWritesTheFixtureFormat(string mode)
    {
        var fixture = Fixtures.Get("llama-gqa", "F32");
        string output = Path.GetTempFileName();
        try
        {
            var r = CliRunner.Run("logits", "--model", fixture.GgufPath, "--tokens", string.Join(",", fixture.PromptIds), "--out", output, "--mode", mode);
            Assert.Equal(0, r.ExitCode);
            var ours = fixture.ReadLogits(output);
            var reference = fixture.ReadLogits(fixture.BatchFile);
            var (max, mean) = KvSharp.Tests.Models.LlamaCppParityTests.Tolerance("F32");
            KvSharp.Tests.Models.LlamaCppParityTests.Compare(reference, ours, 512, max, mean, "cli " + mode);
        }
        finally { File.Delete(output); }
    }

    [Fact]
    public void LogitsPastTheTrainedContextAreWrittenWithAWarning()
    {
        string output = Path.GetTempFileName();
        try
        {
            var r = CliRunner.Run("logits", "--model", Stories, "--tokens", string.Join(',', Enumerable.Repeat(1, 130)), "--out", output);
            Assert.Equal(0, r.ExitCode);
            Assert.Contains("warning: 130 tokens exceed the model's trained context length 128; logits past it may degrade", r.Stderr);
            Assert.Equal(130L * 512 * 4, new FileInfo(output).Length);
        }
        finally { File.Delete(output); }
    }

    [Theory]
    [InlineData("run --model /nonexistent.gguf --prompt hi", "model file not found")]
    [InlineData("run --model {tokenizer} --prompt hi", "neither a GGUF file (it does not start with \"GGUF\") nor a plausible llama2.c checkpoint")]
    [InlineData("run --model {checkpoint} --prompt hi", "llama2.c checkpoint needs its tokenizer")]
    [InlineData("inspect {vocabonly-truncated}", "truncated")]
    [InlineData("logits --model {stories} --tokens 1,2,x --out /tmp/x.f32", "'x' (item 3) is not a token id")]
    [InlineData("logits --model {stories} --tokens 1,99999 --out /tmp/x.f32", "token id 99999")]
    [InlineData("run --model {stories} --prompt {long} --max-tokens 1", "tokens, more than the context of 128: shorten it or raise --context")]
    [InlineData("run --model {stories} --prompt hi --temperature -1", "temperature")]
    public void BadInputGivesAClearErrorAndNonZeroExit(string command, string expected)
    {
        string truncated = Path.GetTempFileName();
        File.WriteAllBytes(truncated, File.ReadAllBytes(TestPaths.Fixture("llama-gqa.Q8_0.gguf"))[..4000]);
        try
        {
            var args = command.Split(' ').Select(a => a
                .Replace("{stories}", Stories)
                .Replace("{tokenizer}", TestPaths.Model("tok512.bin"))
                .Replace("{checkpoint}", TestPaths.Model("stories260K.bin"))
                .Replace("{vocabonly-truncated}", truncated)
                .Replace("{long}", string.Concat(Enumerable.Repeat("Once upon a time there was a girl. ", 40)))).ToArray();
            var r = CliRunner.Run(args);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains(expected, r.Stderr);
            Assert.DoesNotContain("   at ", r.Stderr); // a message, not a stack trace
        }
        finally { File.Delete(truncated); }
    }
}
