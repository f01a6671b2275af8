using KvSharp.Gguf;
using KvSharp.Templates;
using KvSharp.Tests.Tokenization;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Templates;

/// <summary>Which template a model gets: --chat-template NAME|FILE, else the GGUF's own, else the documented fallback.</summary>
public class ChatTemplateResolveTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Fact]
    public void AModelWithoutATemplateGetsThePlainTranscript()
    {
        using var gguf = GgufFile.Open(Stories);
        Assert.Null(ChatTemplate.FromGguf(gguf));
        var template = ChatTemplate.Resolve(null, gguf, TokenizerFixtures.StoriesGguf);
        Assert.Equal("plain", template.Name);
        Assert.Equal(new[] { "\nUser:" }, template.StopStrings);
        var text = template.Render([ChatMessage.System(" Tell stories. "), ChatMessage.User(" Hi "), ChatMessage.Assistant(" Once upon a time."), ChatMessage.User("More")], true).Text;
        Assert.Equal("Tell stories.\n\nUser: Hi\nAssistant: Once upon a time.\nUser: More\nAssistant:", text);
    }

    [Fact]
    public void AnInstructVocabularyWithoutATemplateGetsChatML()
    {
        var data = new TokenizerData("gpt2", "gpt-2", ["a", "b", "<|im_start|>", "<|im_end|>"], null, [1, 1, 3, 3], ["a b"],
            -1, 3, -1, -1, false, false, false, []) { Source = "test" };
        var tok = TokenizerFactory.Create(data);
        Assert.Equal("chatml", ChatTemplate.Resolve(null, null, tok).Name);
    }

    [Fact]
    public void ANamedTemplateOrAFileOverridesTheModels()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        Assert.Equal("llama3", ChatTemplate.Resolve("llama3", null, tok).Name);
        Assert.Equal("chatml", ChatTemplate.Resolve("ChatML", null, tok).Name);
        string file = Path.Combine(Path.GetTempPath(), $"kvsharp-template-{Guid.NewGuid():N}.jinja");
        File.WriteAllText(file, "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}");
        try
        {
            var t = ChatTemplate.Resolve(file, null, tok);
            Assert.Equal(file, t.Name);
            Assert.Equal("[user] hi\n", t.Render([ChatMessage.User("hi")], true).Text);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void AnUnknownNameListsTheBuiltIns()
    {
        var e = Assert.Throws<ArgumentException>(() => ChatTemplate.Resolve("no-such-template", null, TokenizerFixtures.StoriesGguf));
        Assert.Contains("'no-such-template' is neither a built-in template", e.Message);
        Assert.Contains("chatml, qwen2.5, llama2, llama3", e.Message);
    }

    [Fact]
    public void BuiltInNamesIncludeTheCommonFamilies()
    {
        foreach (var name in new[] { "chatml", "llama2", "llama3", "mistral", "gemma", "phi3", "zephyr", "deepseek", "command-r", "plain" })
            Assert.Contains(name, ChatTemplate.BuiltInNames);
        Assert.Throws<ArgumentException>(() => ChatTemplate.BuiltIn("gpt-17"));
    }

    [Fact]
    public void ABrokenGgufTemplateIsReportedWithTheKeyAndFile()
    {
        string path = GgufRewrite.Rewrite("llama-gqa.F32.gguf", add: w => w.Add(ChatTemplate.GgufKey, "{% if %}"));
        try
        {
            using var gguf = GgufFile.Open(path);
            var e = Assert.Throws<TemplateException>(() => ChatTemplate.FromGguf(gguf));
            Assert.Contains(ChatTemplate.GgufKey, e.Message);
            Assert.Contains(path, e.Message);
            Assert.Contains("line 1, column 7", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
