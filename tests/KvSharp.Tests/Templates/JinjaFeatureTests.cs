using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>Each Jinja feature renders exactly as Python Jinja2 with Hugging Face's settings (jinja-features.json).</summary>
public class JinjaFeatureTests
{
    private static readonly JsonElement[] Cases = TemplateTestData.Load("jinja-features.json").GetProperty("cases").EnumerateArray().ToArray();

    public static TheoryData<string> Names() => new(Cases.Select(c => c.GetProperty("name").GetString()!));

    [Theory]
    [MemberData(nameof(Names))]
    public void RendersAsJinja2(string name)
    {
        var c = Cases.Single(x => x.GetProperty("name").GetString() == name);
        var variables = c.GetProperty("variables").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        var template = ChatTemplate.Parse(c.GetProperty("template").GetString()!, name);
        Assert.Equal(c.GetProperty("expected").GetString(), template.Render([], addGenerationPrompt: false, extra: variables).Text);
    }

    [Fact]
    public void FeatureCasesAreAllThere() => Assert.True(Cases.Length >= 40, $"only {Cases.Length} cases in jinja-features.json");

    [Fact]
    public void TemplateNewlinesAreNormalizedButDataIsNot()
    {
        var t = ChatTemplate.Parse("a\r\nb{{ messages[0].content }}\r\n");
        Assert.Equal("a\nbx\r\ny", t.Render([ChatMessage.User("x\r\ny")], false).Text);
    }

    [Fact]
    public void StrftimeNowReadsTheTemplatesClock()
    {
        var t = ChatTemplate.Parse("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M %A %j') }}").WithClock(() => TemplateTestData.FixedNow);
        Assert.Equal("26 Jul 2024|2024-07-26 13:45 Friday 208", t.Render([], false).Text);
    }

    [Fact]
    public void OneTemplateRendersForManyThreadsAtOnce()
    {
        var template = ChatTemplate.BuiltIn("qwen2.5");
        string Render(int i) => template.Render([ChatMessage.User($"message {i}"), ChatMessage.Assistant("ok"), ChatMessage.User("again")], true).Text;
        var expected = Enumerable.Range(0, 64).Select(Render).ToArray();
        var actual = new string[64];
        Parallel.For(0, 64, i => actual[i] = Render(i));
        Assert.Equal(expected, actual);
    }
}
