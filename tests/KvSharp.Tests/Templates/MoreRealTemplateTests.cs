using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// Twenty-one more real templates (Qwen3, gpt-oss, DeepSeek V3.1, GLM-4.6, Kimi K2, Mistral Small 3.1, Seed-OSS,
/// MiniMax M2, Nemotron Nano 2, OLMo 3, and vLLM's tool templates for Llama 3.x/4, Gemma 3, Granite, Phi-4-mini,
/// MiniCPM3, ToolACE, xLAM, Hermes, Qwen3-Coder) render a chat, a lone user turn and a tool round exactly as Python
/// Jinja2 does (jinja2-more-templates.json); and the Jinja features they needed (call blocks, the format filter,
/// integer dictionary keys, Markup's escaping +) on their own.
/// </summary>
public class MoreRealTemplateTests
{
    private static readonly JsonElement Data = TemplateTestData.Load("jinja2-more-templates.json");
    public static TheoryData<int> Indices() => TemplateTestData.CaseIndices(Data);

    [Theory]
    [MemberData(nameof(Indices))]
    public void RendersAsJinja2(int index)
    {
        bool tools = Data.GetProperty("cases")[index].GetProperty("conversation").GetString() == "tools";
        var (expected, actual) = TemplateTestData.RenderCase(Data, index, tools ? new Dictionary<string, object?> { ["tools"] = Data.GetProperty("tools") } : null);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData("{% macro box(t) %}[{{ caller() }}:{{ t }}]{% endmacro %}{% call box('x') %}in{{ 1 + 1 }}{% endcall %}", "[in2:x]")]
    [InlineData("{% macro each(xs) %}{% for x in xs %}{{ caller(x, loop.index) }}{% endfor %}{% endmacro %}{% call(v, i) each(['a', 'b']) %}<{{ i }}={{ v }}>{% endcall %}", "<1=a><2=b>")]
    [InlineData("{{ '%s is %d years, %r, %5.2f|%-4s|%%' | format('Ann', 7, 'q', 3.14159, 'ab') }}", "Ann is 7 years, 'q',  3.14|ab  |%")]
    [InlineData("{{ '%d|%i|%x' | format(3.7, -2.5, 255) }}", "3|-2|ff")]
    [InlineData("{% set d = {16: 'b', 2: 'a', 8: 'c'} %}{% for k, v in d | dictsort %}{{ k + 1 }}{{ v }} {% endfor %}{{ d[8] }}{% for k in d %}{{ k * 2 }},{% endfor %}", "3a 9c 17b c32,4,16,")]
    [InlineData("{{ 'x<' | safe + '<y' }}|{{ '<a>' + ('&' | safe) }}|{{ ('q' | safe) ~ '<' }}", "x<&lt;y|&lt;a&gt;&|q<")]
    public void FeaturesTheseTemplatesNeedRenderAsJinja2(string source, string expected) =>
        Assert.Equal(expected, ChatTemplate.Parse(source, "feature").Render([], addGenerationPrompt: false).Text);
}
