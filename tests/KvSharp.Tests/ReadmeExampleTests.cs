using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests;

/// <summary>Keeps the README's C# example compiling and running: its body is copied here and compared line by line.</summary>
public class ReadmeExampleTests
{
    // ---- README example begins (everything after the `string modelPath = ...` line) ----
    private static void Example(string modelPath)
    {
using var model = LlmModel.Load(modelPath);
using var session = model.CreateSession(new SessionOptions { CacheMode = KvCacheMode.Contiguous, ContextLength = 512 });
foreach (string piece in session.Generate("Once upon a time", new GenerationOptions { MaxTokens = 50 }))
    Console.Write(piece);
// The next turn continues the same cache: only the new tokens are computed.
foreach (string piece in session.Generate(" The end.", new GenerationOptions { MaxTokens = 20 }))
    Console.Write(piece);
Console.WriteLine(session.LastStats);

// Lower level, past_key_values style: you hold the cache.
var cache = model.CreateCache(KvCacheMode.Static, contextLength: 512);
float[] logits = model.Evaluate([1, 410, 469, 347], cache);   // prefill: BOS "Zoo"
logits = model.Evaluate([Sampler.ArgMax(logits)], cache);      // one decode step
cache.Truncate(2);   // rewind to the first two positions
cache.Reset();       // start over, zeroed
    }
    // ---- README example ends ----

    [Fact]
    public void ReadmeExampleRuns() => Example(TestPaths.Model("stories260K.gguf"));

    [Fact]
    public void ReadmeExampleIsTheCodeAbove()
    {
        string readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        int start = readme.IndexOf("```csharp", StringComparison.Ordinal);
        int end = readme.IndexOf("```", start + 9, StringComparison.Ordinal);
        var block = readme[(start + 9)..end].Split('\n').Select(l => l.TrimEnd()).ToList();
        int bodyStart = block.FindIndex(l => l.StartsWith("string modelPath", StringComparison.Ordinal)) + 1;
        var body = block.Skip(bodyStart).Where(l => l.Length > 0).ToList();

        string source = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "ReadmeExampleTests.cs"));
        int from = source.IndexOf("    {\n", source.IndexOf("README example begins", StringComparison.Ordinal), StringComparison.Ordinal) + 6;
        int to = source.IndexOf("    }\n    // ---- README example ends", StringComparison.Ordinal);
        var copy = source[from..to].Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0).ToList();
        Assert.Equal(body, copy);
    }
}
