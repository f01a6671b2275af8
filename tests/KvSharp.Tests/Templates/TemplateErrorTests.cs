using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>Syntax and runtime errors name the template, the line and the column, and say what went wrong.</summary>
public class TemplateErrorTests
{
    private static TemplateException ParseError(string source) => Assert.Throws<TemplateException>(() => ChatTemplate.Parse(source, "t.jinja"));

    private static TemplateException RenderError(string source, params ChatMessage[] messages) =>
        Assert.Throws<TemplateException>(() => ChatTemplate.Parse(source, "t.jinja").Render(messages, true));

    [Theory]
    [InlineData("{% if %}x{% endif %}", 1, 7, "expected a value")]
    [InlineData("ok\n{% for m in messages %}\n{{ m }}", 3, 8, "never closed")]
    [InlineData("{{ 1 + }}", 1, 8, "expected a value")]
    [InlineData("{% endif %}", 1, 4, "no block open")]
    [InlineData("{% frobnicate %}", 1, 4, "unknown statement 'frobnicate'")]
    [InlineData("a\n  {{ 'open }}", 2, 6, "never closed")]
    [InlineData("{# no end", 1, 1, "never closed")]
    [InlineData("{{ x @ y }}", 1, 6, "unexpected character '@'")]
    [InlineData("{% if true %}a{% else %}b{% elif false %}c{% endif %}", 1, 29, "expected '{% endif %}'")]
    public void SyntaxErrorsSayWhere(string source, int line, int column, string text)
    {
        var e = ParseError(source);
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.Contains(text, e.Message);
        Assert.Contains("t.jinja", e.Message);
        Assert.Contains($"line {line}, column {column}", e.Message);
    }

    [Fact]
    public void CallingAnUndefinedNameSaysWhichAndWhere()
    {
        var e = RenderError("{% for m in messages %}\n  {{ m.content | trim }}{{ undefined_helper(m) }}\n{% endfor %}", ChatMessage.User("hi"));
        Assert.Equal((2, 28), (e.Line, e.Column));
        Assert.Contains("'undefined_helper' is undefined", e.Message);
        Assert.False(e.RaisedByTemplate);
    }

    [Fact]
    public void RaiseExceptionCarriesTheTemplatesMessage()
    {
        var e = RenderError("{% if messages[0]['role'] != 'user' %}\n{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n{% endif %}",
            ChatMessage.Assistant("hi"));
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.Reason);
        Assert.Equal(2, e.Line);
        Assert.Contains("Conversation roles must alternate", e.Message);
    }

    [Theory]
    [InlineData("{{ 'a' + 1 }}", "unsupported operand types for +")]
    [InlineData("{{ missing.attribute }}", "'missing' is undefined")]
    [InlineData("{{ messages[5].content }}", "out of range")]
    [InlineData("{{ 'x' | frobnicate }}", "unknown filter 'frobnicate'")]
    [InlineData("{{ 1 is frobnicated }}", "unknown test 'frobnicated'")]
    [InlineData("{{ 1 // 0 }}", "division by zero")]
    [InlineData("{{ 1 < 'a' }}", "cannot compare")]
    [InlineData("{% set x.y = 1 %}", "only a namespace()")]
    [InlineData("{% for a, b in [[1, 2, 3]] %}{% endfor %}", "cannot unpack 3 values into 2 names")]
    [InlineData("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "takes 1 argument")]
    [InlineData("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "recursed deeper")]
    [InlineData("{{ range(1, 2, 0) }}", "step cannot be zero")]
    public void RuntimeErrorsSayWhatWentWrong(string source, string text)
    {
        var e = RenderError(source, ChatMessage.User("hi"));
        Assert.Contains(text, e.Message);
        Assert.Equal(1, e.Line);
    }

    [Fact]
    public void ErrorsAreFormatErrorsSoTheCliReportsThemAsUserErrors() =>
        Assert.IsAssignableFrom<FormatException>(ParseError("{% if %}"));

    [Fact]
    public void LongTemplatesParseInLinearTime()
    {
        // 20,000 lines of tags: a quadratic position lookup or parser would take minutes here.
        string source = string.Concat(Enumerable.Repeat("{% if true %}{{ 'x' }}{% endif %}\n", 20_000));
        var t = ChatTemplate.Parse(source);
        Assert.Equal(20_000, t.Render([], false).Text.Length);
    }
}
