using System.Text.Json;
using KvSharp.Gguf;
using KvSharp.Templates;
using KvSharp.Tests.Tokenization;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Templates;

/// <summary>
/// ../shared/fixtures/chat-templates.json (rendered by @huggingface/jinja): every case renders exactly, and its
/// tokenization with the real Llama 3 vocabulary equals tokenizing the expected text with parse_special = true and
/// no added BOS (the template writes the BOS text itself), as the fixture's README says.
/// </summary>
public class ChatTemplateFixtureTests
{
    private static readonly JsonElement Root = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("chat-templates.json"))).RootElement;
    private static readonly JsonElement[] Cases = Root.GetProperty("cases").EnumerateArray().ToArray();
    private static string VocabPath => Path.Combine(TokenizerFixtures.TokenizerDir, "ggml-vocab-llama3.gguf");

    public static TheoryData<int> Indices() => new(Enumerable.Range(0, Cases.Length));

    private static (ChatTemplate Template, RenderedChat Rendered, string Expected) RenderCase(int index)
    {
        var c = Cases[index];
        var template = ChatTemplate.Parse(Root.GetProperty("templates").GetProperty(c.GetProperty("template_source").GetString()!).GetString()!, "llama3");
        var rendered = template.Render(TemplateTestData.Messages(c.GetProperty("messages")), c.GetProperty("add_generation_prompt").GetBoolean(),
            c.GetProperty("bos_token").GetString()!, c.GetProperty("eos_token").GetString()!);
        return (template, rendered, c.GetProperty("expected").GetString()!);
    }

    [Theory]
    [MemberData(nameof(Indices))]
    public void RendersExactly(int index)
    {
        var (_, rendered, expected) = RenderCase(index);
        Assert.Equal(expected, rendered.Text);
    }

    [Theory]
    [MemberData(nameof(Indices))]
    public void TokenizesLikeParseSpecialWithTheLlama3Vocabulary(int index)
    {
        var tok = TokenizerFixtures.FromGguf(VocabPath);
        var (_, rendered, expected) = RenderCase(index);
        int[] ids = rendered.Tokenize(tok);
        Assert.Equal(tok.Encode(expected, addSpecial: false, parseSpecial: true), ids);
        Assert.Equal(128000, ids[0]);
        Assert.Equal(1, ids.Count(id => id == 128000));
        Assert.Equal(expected, tok.Decode(ids, renderSpecial: true));
    }

    [Fact]
    public void TwelveCases() => Assert.Equal(12, Cases.Length);

    [Fact]
    public void TheVocabularysGgufCarriesTheSameTemplate()
    {
        using var gguf = GgufFile.Open(VocabPath);
        var template = ChatTemplate.FromGguf(gguf);
        Assert.NotNull(template);
        Assert.Equal(Root.GetProperty("templates").GetProperty("llama3").GetString(), template.Source);
        Assert.Equal("gguf", template.Name);
        var tok = TokenizerFixtures.FromGguf(VocabPath);
        Assert.Equal(template.Source, ChatTemplate.Resolve(null, gguf, tok).Source);
    }

    [Fact]
    public void RenderingWithTheTokenizerUsesItsBosAndEosTexts()
    {
        var tok = TokenizerFixtures.FromGguf(VocabPath);
        var (template, _, _) = RenderCase(0);
        var rendered = template.Render([ChatMessage.User("Hi")], true, tok);
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>user", rendered.Text);
        Assert.Equal("<|begin_of_text|>", rendered.BosToken);
        Assert.Equal("<|end_of_text|>", rendered.EosToken);
        Assert.StartsWith("<|start_header_id|>", rendered.Prompt);
    }
}
