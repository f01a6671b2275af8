using KvSharp.Cache;
using KvSharp.Engine;

namespace KvSharp.Tests.Engine;

/// <summary>
/// The real pretrained stories260K reproduces llama2.c's and llama.cpp's greedy text byte for byte, from the GGUF
/// and from the llama2.c checkpoint, in every cache mode.
/// </summary>
public class GoldenStoriesTests
{
    public static TheoryData<string, KvCacheMode> Sources() => new()
    {
        { "gguf", KvCacheMode.Contiguous },
        { "gguf", KvCacheMode.Static },
        { "gguf", KvCacheMode.None },
        { "llama2c", KvCacheMode.Contiguous },
    };

    internal static LlmModel LoadStories(string source) => source == "gguf"
        ? LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 })
        : LlmModel.Load(TestPaths.Model("stories260K.bin"), new ModelLoadOptions { TokenizerPath = TestPaths.Model("tok512.bin"), Threads = 2 });

    /// <summary>
    /// Prompt and generated text as run.c prints it: everything after BOS, leading space stripped. run.c with
    /// steps = N runs the model at positions 0..N-1 and prints the token sampled at each, so the text holds
    /// N - prompt + 1 generated tokens, the last of which is printed but never run through the model.
    /// </summary>
    private static string Complete(string source, KvCacheMode mode, string prompt, int positions)
    {
        using var model = LoadStories(source);
        using var session = model.CreateSession(new SessionOptions { CacheMode = mode, ContextLength = 512 });
        int promptTokens = model.Tokenizer.Encode(prompt, addSpecial: true, parseSpecial: false).Length;
        var generated = string.Concat(session.Generate(prompt, new GenerationOptions
        {
            MaxTokens = positions - promptTokens + 1,
            StopAtEndOfGeneration = false,
        }));
        Assert.Equal(positions + 1, session.Tokens.Count);
        Assert.Equal(positions, session.CacheMode == KvCacheMode.None ? positions : session.Cache.Length);
        return prompt + generated;
    }

    private static string Golden(string file) => File.ReadAllText(TestPaths.Model(file)).TrimEnd('\n');

    [Theory]
    [MemberData(nameof(Sources))]
    public void ZooPromptTo60Positions(string source, KvCacheMode mode) =>
        Assert.Equal(Golden("golden-zoo-60.txt"), Complete(source, mode, "Zoo", 60));

    [Theory]
    [MemberData(nameof(Sources))]
    public void EmptyPromptTo200Positions(string source, KvCacheMode mode) =>
        Assert.Equal(Golden("golden-empty-200.txt"), Complete(source, mode, "", 200));

    [Fact]
    public void ZooTokenizesAsTheGoldenSays()
    {
        using var model = LoadStories("gguf");
        Assert.Equal([1, 410, 469, 347], model.Tokenizer.Encode("Zoo", addSpecial: true, parseSpecial: false));
        using var bin = LoadStories("llama2c");
        Assert.Equal([1, 410, 469, 347], bin.Tokenizer.Encode("Zoo", addSpecial: true, parseSpecial: false));
    }
}
