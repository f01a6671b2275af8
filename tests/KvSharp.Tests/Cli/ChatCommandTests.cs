using System.Text.RegularExpressions;

namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp chat` driven through piped standard input (one message per line), as a script would.</summary>
public class ChatCommandTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    private static CliRunner.Result Chat(string input, params string[] extra) =>
        CliRunner.RunWithInput(input, ["chat", "-m", Stories, "--max-tokens", "12", "--temperature", "0", "--threads", "2", .. extra]);

    private static List<(int Cached, int New)> Turns(string stderr) =>
        Regex.Matches(stderr, @"prompt: (\d+) cached \+ (\d+) new tokens").Select(m => (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value))).ToList();

    [Fact]
    public void MultiTurnChatReusesTheCacheAndResetStartsOver()
    {
        var r = Chat("Hello\nTell me about a dog\n/stats\n/reset\nHi again\n/exit\nnever read\n");
        Assert.Equal(0, r.ExitCode);
        var turns = Turns(r.Stderr);
        Assert.Equal(3, turns.Count);
        Assert.Equal(0, turns[0].Cached);
        Assert.True(turns[1].Cached > 0, r.Stderr);
        Assert.True(turns[1].Cached > turns[1].New, "most of the second prompt is the first turn, already cached: " + r.Stderr);
        Assert.Equal(0, turns[2].Cached); // after /reset
        Assert.Contains("conversation reset", r.Stderr);
        Assert.Matches(@"prompt tokens: \d+ from the cache, \d+ computed \(\d+% reused\)", r.Stderr);
        Assert.Contains("KV cache (F32)", r.Stderr);
        Assert.Matches(@"first token [\d.]+ ms; \d+ tokens at [\d.]+ tok/s; context \d+/128", r.Stderr);
        Assert.DoesNotContain("never read", r.Stdout + r.Stderr);
        Assert.True(r.Stdout.Trim().Length > 0, "the replies go to stdout");
        Assert.DoesNotContain("[kvsharp] prompt", r.Stdout);
    }

    [Fact]
    public void SystemPromptAndUnknownCommands()
    {
        var r = Chat("/system You tell stories.\nHello\n/frobnicate\n/system\nHi\n", "--system", "Be nice.");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("system prompt set", r.Stderr);
        Assert.Contains("system prompt cleared", r.Stderr);
        Assert.Contains("unknown command /frobnicate", r.Stderr);
        Assert.Equal(2, Turns(r.Stderr).Count);
    }

    [Fact]
    public void AFullContextIsSaidClearly()
    {
        var r = Chat("Once upon a time there was a girl\nShe liked to play with her ball in the park\nAnd then?\n", "--context", "40");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("is full", r.Stderr);
        Assert.Contains("/reset starts", r.Stderr);
        Assert.Contains("--context N", r.Stderr);
    }

    [Fact]
    public void AnUnknownTemplateIsAOneLineError()
    {
        var r = Chat("Hello\n", "--chat-template", "no-such-template");
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: --chat-template 'no-such-template' is neither a built-in template", r.Stderr.Split('\n').Last(l => l.Length > 0));
    }

    [Fact]
    public void ATemplateErrorSkipsTheTurnAndFailsTheExitCode()
    {
        string file = Path.Combine(Path.GetTempPath(), $"kvsharp-chat-{Guid.NewGuid():N}.jinja");
        File.WriteAllText(file, "{% for m in messages %}{% if m.content == 'bad' %}{{ raise_exception('bad message') }}{% endif %}{{ m.content }}\n{% endfor %}");
        try
        {
            var r = Chat("bad\ngood\n", "--chat-template", file);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("bad message", r.Stderr);
            Assert.Contains("line 1, column", r.Stderr);
            Assert.Single(Turns(r.Stderr));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void ANamedTemplateOverridesTheFallback()
    {
        var r = Chat("Hello\n", "--chat-template", "chatml");
        Assert.Equal(0, r.ExitCode);
        Assert.Single(Turns(r.Stderr));
    }

    /// <summary>
    /// A model that answers in gpt-oss's Harmony messages, under a template that refuses Harmony markers in an earlier
    /// assistant content (as gpt-oss's official one does): the analysis goes to stderr after "[reasoning]", the answer to
    /// stdout with no marker, and the reply goes back into the conversation as answer and reasoning, so the next turn
    /// renders instead of being refused.
    /// </summary>
    [Fact]
    public void AHarmonyReplyShowsItsAnswerAndTheNextTurnRenders()
    {
        string strict = KvSharp.Server.Tests.HarmonyModel.Template.Replace("{%- for m in messages %}",
            "{%- for m in messages %}{% if m.role == 'assistant' and '<|channel|>' in m.content %}{{ raise_exception('channel tags in the content') }}{% endif %}");
        string model = KvSharp.Server.Tests.ToolCallingModel.Write(KvSharp.Server.Tests.HarmonyModel.Answer, strict);
        try
        {
            var r = CliRunner.RunWithInput("Weather?\nAnd tomorrow?\n", ["chat", "-m", model, "--max-tokens", "16", "--temperature", "0", "--threads", "2"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(2, Turns(r.Stderr).Count);
            Assert.Equal(["It is sunny.", "It is sunny."], r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
            Assert.DoesNotContain("<|", r.Stdout);
            Assert.Equal(2, Regex.Matches(r.Stderr, @"\[reasoning\] Let me see\.").Count);
        }
        finally { File.Delete(model); }
    }
}
