using System.Collections.Concurrent;
using System.Text.Json;
using KvSharp.Gguf;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Tokenization;

/// <summary>Loads the shared tokenizer fixtures (read in place from ../shared, never copied).</summary>
internal static class TokenizerFixtures
{
    public sealed record StoriesCase(string Text, int[] IdsNoSpecial, int[] IdsBos, int[] IdsBosParseSpecial);

    public sealed record VocabCase(string Text, int[] Ids);

    private static readonly ConcurrentDictionary<string, ITokenizer> Cache = new();
    private static readonly Lazy<StoriesCase[]> Stories = new(LoadStories);

    public const string Separator = "\n__ggml_vocab_test__\n";

    public static string TokenizerDir => Path.Combine(TestPaths.Fixtures, "tokenizer");

    public static ITokenizer FromGguf(string path) => Cache.GetOrAdd(path, p =>
    {
        using var file = GgufFile.Open(p);
        return TokenizerFactory.FromGguf(file);
    });

    public static ITokenizer StoriesGguf => FromGguf(TestPaths.Model("stories260K.gguf"));

    public static ITokenizer VocabGguf(string name) => FromGguf(Path.Combine(TokenizerDir, $"ggml-vocab-{name}.gguf"));

    public static StoriesCase[] StoriesCases => Stories.Value;

    private static StoriesCase[] LoadStories()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerDir, "stories260K.tokens.json")));
        static int[] Ids(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(x => x.GetInt32()).ToArray();
        return doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new StoriesCase(c.GetProperty("text").GetString()!, Ids(c, "ids_no_special"), Ids(c, "ids_bos"), Ids(c, "ids_bos_parse_special")))
            .ToArray();
    }

    /// <summary>llama.cpp's test-tokenizer-0 format: .inp split on the full separator, .out one line of ids per case.</summary>
    public static VocabCase[] LoadVocabCases(string name)
    {
        string basePath = Path.Combine(TokenizerDir, $"ggml-vocab-{name}.gguf");
        string[] inputs = File.ReadAllText(basePath + ".inp").Split(Separator);
        inputs = inputs[..^1]; // the file ends with a separator; what follows it is not a case
        string[] lines = File.ReadAllText(basePath + ".out").Split('\n');
        var cases = new VocabCase[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            string line = lines[i].Trim();
            int[] ids = line.Length == 0 ? [] : line.Split(' ').Select(int.Parse).ToArray();
            cases[i] = new VocabCase(inputs[i], ids);
        }
        return cases;
    }
}
