using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// llama.cpp's chat-template test data (llama-cpp-chat-templates.json): each real template, rendered for its
/// six-message conversation with add_generation_prompt, gives exactly the prompt llama.cpp's Jinja path produces
/// (system role merged where the template has none, BOS/EOS text stripped: <see cref="RenderedChat.Prompt"/>).
/// </summary>
public class LlamaCppTemplateTests
{
    private static readonly JsonElement Data = TemplateTestData.Load("llama-cpp-chat-templates.json");
    private static readonly JsonElement[] Cases = Data.GetProperty("cases").EnumerateArray().ToArray();

    public static TheoryData<string> Names() => new(Cases.Select(c => c.GetProperty("name").GetString()!));

    [Theory]
    [MemberData(nameof(Names))]
    public void RendersLlamaCppsExpectedPrompt(string name)
    {
        var c = Cases.Single(x => x.GetProperty("name").GetString() == name);
        var template = ChatTemplate.Parse(c.GetProperty("template").GetString()!, name);
        var rendered = template.Render(TemplateTestData.Messages(Data.GetProperty("conversation")), addGenerationPrompt: true,
            c.GetProperty("bos_token").GetString()!, c.GetProperty("eos_token").GetString()!);
        Assert.Equal(c.GetProperty("expected").GetString(), rendered.Prompt);
    }

    [Fact]
    public void TwentyNineTemplates() => Assert.Equal(29, Cases.Length);

    [Theory]
    [InlineData("google/gemma-7b-it", false)]
    [InlineData("Phi-3-mini", false)]
    [InlineData("teknium/OpenHermes-2.5-Mistral-7B", true)]
    [InlineData("Llama-3", true)]
    public void DetectsWhetherATemplateRendersTheSystemRole(string name, bool supports)
    {
        var c = Cases.Single(x => x.GetProperty("name").GetString() == name);
        Assert.Equal(supports, ChatTemplate.Parse(c.GetProperty("template").GetString()!).SupportsSystemRole);
    }
}
