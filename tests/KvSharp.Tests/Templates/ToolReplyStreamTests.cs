using System.Text.Json;
using KvSharp.Templates;
using KvSharp.Tests.Tokenization;

namespace KvSharp.Tests.Templates;

/// <summary>
/// A reply to a request with tools, streamed: in every syntax, however the reply is cut into pieces, what is shown
/// before the end plus what <see cref="ToolReplyStream.Finish"/> gives add up to the whole reply's reading (text and
/// reasoning), no call syntax is ever shown as text, and the text before a call goes out before the reply ends; in
/// every syntax whose calls stream, each call's deltas add up to the whole reading's call (its name, its arguments'
/// exact text), and a reply whose whole reading disagrees with what was streamed is told apart.
/// </summary>
public class ToolReplyStreamTests
{
    private static readonly JsonElement Tools = TemplateTestData.Load("jinja2-tool-templates.json").GetProperty("templates");
    private static readonly JsonElement More = TemplateTestData.Load("jinja2-more-templates.json").GetProperty("templates");

    private static ChatTemplate Template(JsonElement set, string name) => ChatTemplate.Parse(set.GetProperty(name).GetString()!, name);

    /// <summary>A syntax told from a template holding only <paramref name="marker"/> (as ToolCallSyntaxTests does).</summary>
    private static ChatTemplate Marked(string marker) => ChatTemplate.Parse("{{ '" + marker + "' }}", "marker");

    private const string Weather = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";

    /// <summary>Per syntax: its template, the text before its calls that a stream shows before the end, and replies.</summary>
    public static TheoryData<string, string> Replies()
    {
        var data = new TheoryData<string, string>();
        void Add(string syntax, params string[] replies)
        {
            foreach (string r in replies) data.Add(syntax, r);
        }
        Add("hermes", "Let me check.\n<tool_call>\n" + Weather + "\n</tool_call>", "  It is sunny.  \n", "<tool_call>" + Weather + "</tool_call>",
            "Sure.<tool_call>{\"name\": broken</tool_call> and more", "A <tool_call>" + Weather + "</tool_call> B", "Half a marker <tool_ at the end");
        Add("mistral", "One moment. [TOOL_CALLS][" + Weather + "]", "[TOOL_CALLS] not a list", "Plain [TOOL text.");
        Add("llama3-json", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "  The weather is {fine}.", "{not json", "<b>bold</b> text");
        Add("functionary-v3.1", "Checking <function=get_weather>{\"city\": \"Paris\"}</function>", "No call here.");
        Add("deepseek-r1", "<think>Look it up.</think>\n\nOn it.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            "<think>Hm.\n</think>Just text.");
        Add("firefunction-v2", "Let me see functools[" + Weather + "]", "functools is a module.");
        Add("pipe-tagged", "Sure.<|tool_call|>" + Weather + "<|/tool_call|>", "No.");
        Add("qwen3-coder", "Checking.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>", "Text.");
        Add("harmony", "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary<|message|>Looking.<|end|>" +
                       "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}",
            "<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>It is sunny.");
        Add("command-r7b", "<|START_RESPONSE|>It is sunny.<|END_RESPONSE|>");
        Add("functionary-v3.2", "all\nLet me check.>>>get_weather\n{\"city\": \"Paris\"}");
        return data;
    }

    /// <summary>The template (and how its replies' thinking splits) for each syntax the cases name.</summary>
    private static (ToolCallSyntax Syntax, ReplySplitting? Reasoning) Of(string syntax)
    {
        var template = syntax switch
        {
            "hermes" => Template(Tools, "Qwen-Qwen2.5-7B-Instruct.jinja"),
            "mistral" => Template(Tools, "mistralai-Mistral-Nemo-Instruct-2407.jinja"),
            "llama3-json" => Template(Tools, "meta-llama-Llama-3.1-8B-Instruct.jinja"),
            "functionary-v3.1" => Template(Tools, "meetkai-functionary-medium-v3.1.jinja"),
            "functionary-v3.2" => Template(Tools, "meetkai-functionary-medium-v3.2.jinja"),
            "command-r7b" => Template(Tools, "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja"),
            "deepseek-r1" => Marked("<think></think><｜tool▁calls▁begin｜>"),
            "firefunction-v2" => Marked(" functools["),
            "pipe-tagged" => Marked("<|tool_call|>"),
            "qwen3-coder" => Template(More, "vllm__tool_chat_template_qwen3coder.jinja"),
            "harmony" => Template(More, "extra__openai-gpt-oss-120b.jinja"),
            _ => throw new ArgumentException(syntax),
        };
        var found = ToolCallSyntax.Of(template)!;
        Assert.Equal(syntax, found.Name);
        return (found, ReplySplitting.Of(template, ""));
    }

    /// <summary>A whole reply read as the server and the chat client read it; no calls, the text as generated, its thinking apart.</summary>
    private static (string? Reasoning, string Content, IReadOnlyList<ChatToolCall> Calls) Whole(ToolCallSyntax syntax, ReplySplitting? reasoning, string reply)
    {
        if (syntax.ReadCalls(reply, default, reasoning) is { } called) return (called.Reasoning, called.Content, called.Calls);
        if (reasoning == null) return (null, reply, []);
        var (r, a) = reasoning.Split(reply);
        return (r, a, []);
    }

    /// <summary>Streams <paramref name="pieces"/>; returns what was shown before the end, and shown plus the rest.</summary>
    private static (string ShownText, string Text, string Reasoning) Stream(ToolCallSyntax syntax, ReplySplitting? reasoning, IEnumerable<string> pieces,
        (string? Reasoning, string Content, IReadOnlyList<ChatToolCall> Calls) whole)
    {
        var stream = new ToolReplyStream(syntax, reasoning);
        string text = "", thought = "";
        foreach (string piece in pieces)
        {
            var (r, c) = stream.Append(piece);
            (thought, text) = (thought + r, text + c);
        }
        Assert.Equal(text, stream.ShownContent);
        string shown = text;
        var (restThought, restText) = stream.Finish(whole.Reasoning, whole.Content);
        return (shown, text + restText, thought + restThought);
    }

    /// <summary>Every way to cut the reply in two, and random cuts into many pieces.</summary>
    private static IEnumerable<string[]> Cuts(string reply)
    {
        yield return [reply];
        for (int i = 1; i < reply.Length; i++) yield return [reply[..i], reply[i..]];
        var random = new Random(reply.Length);
        for (int round = 0; round < 40; round++)
        {
            var pieces = new List<string>();
            for (int at = 0; at < reply.Length;)
            {
                int n = Math.Min(reply.Length - at, random.Next(1, 6));
                pieces.Add(reply.Substring(at, n));
                at += n;
            }
            yield return [.. pieces];
        }
    }

    /// <summary>Whether <paramref name="streamed"/> is <paramref name="whole"/>, with at most whitespace in front.</summary>
    private static void AssertAddsUp(string whole, string streamed, string what)
    {
        Assert.True(streamed.EndsWith(whole, StringComparison.Ordinal) && string.IsNullOrWhiteSpace(streamed[..^whole.Length]),
            $"{what}: streamed \"{streamed}\", read whole \"{whole}\"");
    }

    [Theory]
    [MemberData(nameof(Replies))]
    public void WhatIsShownAndTheRestAddUpToTheWholeReading(string syntaxName, string reply)
    {
        var (syntax, reasoning) = Of(syntaxName);
        var whole = Whole(syntax, reasoning, reply);
        foreach (var pieces in Cuts(reply))
        {
            var (shown, text, thought) = Stream(syntax, reasoning, pieces, whole);
            AssertAddsUp(whole.Content, text, $"text of [{string.Join("|", pieces)}]");
            AssertAddsUp(whole.Reasoning ?? "", thought, $"reasoning of [{string.Join("|", pieces)}]");
            // A call's syntax never shows as text before the end.
            foreach (string marker in new[] { "<tool_call>", "[TOOL_CALLS]", "<function=", "<｜tool", "functools[", "<|tool_call|>", "<|channel|>", "<|START", ">>>" })
                Assert.DoesNotContain(marker, shown);
        }
    }

    [Theory]
    [InlineData("hermes", "Let me check.\n<tool_call>\n" + Weather + "\n</tool_call>", "Let me check.")]
    [InlineData("hermes", "  It is sunny.  \n", "  It is sunny.")]
    [InlineData("hermes", "Half a marker <tool_", "Half a marker")]
    [InlineData("mistral", "One moment. [TOOL_CALLS][" + Weather + "]", "One moment.")]
    [InlineData("llama3-json", "  The weather is {fine}.", "  The weather is {fine}.")]
    [InlineData("llama3-json", "{\"name\": \"get_weather\", \"parameters\": {}}", "")]
    [InlineData("functionary-v3.1", "Checking <function=get_weather>{}</function>", "Checking")]
    [InlineData("deepseek-r1", "<think>Look.</think>\n\nOn it.<｜tool▁calls▁begin｜>", "On it.")]
    [InlineData("firefunction-v2", "Let me see functools[", "Let me see")]
    [InlineData("pipe-tagged", "Sure.<|tool_call|>{", "Sure.")]
    [InlineData("qwen3-coder", "Checking.\n<tool_call>\n<function=x>", "Checking.")]
    [InlineData("harmony", "<|channel|>analysis<|message|>Hm.<|end|><|start|>assistant<|channel|>commentary<|message|>Looking.<|end|><|start|>assistant to=functions.f", "Looking.")]
    // Syntaxes whose text is not what comes before their first call show at the end.
    [InlineData("command-r7b", "<|START_RESPONSE|>It is sunny.", "")]
    [InlineData("functionary-v3.2", "all\nLet me check.", "")]
    public void TheTextBeforeACallIsShownBeforeTheReplyEnds(string syntaxName, string reply, string shown)
    {
        var (syntax, reasoning) = Of(syntaxName);
        var stream = new ToolReplyStream(syntax, reasoning);
        foreach (char c in reply) stream.Append(c.ToString());
        Assert.Equal(shown, stream.ShownContent);
    }

    [Fact]
    public void TheReasoningIsShownAsItComes()
    {
        var (syntax, reasoning) = Of("deepseek-r1");
        var stream = new ToolReplyStream(syntax, reasoning);
        Assert.Equal(("Look", ""), stream.Append("<think>Look"));
        Assert.Equal((" it up.", ""), stream.Append(" it up.\n"));
        // The whitespace it ended with is held: the whole reading trims it.
        Assert.Equal(("", "On"), stream.Append("</think>\n\nOn"));
        Assert.Equal("Look it up.", stream.ShownReasoning);
    }

    private static readonly JsonElement WeatherTool = JsonDocument.Parse("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", " +
                                                                   "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]").RootElement;

    [Fact]
    public void AForcedCallShowsNothingBeforeItEnds()
    {
        var (syntax, reasoning) = Of("hermes");
        var stream = new ToolReplyStream(syntax, reasoning, syntax.Force(WeatherTool));
        Assert.Equal(("", ""), stream.Append("Plain words"));
        Assert.Equal(("", "Plain words"), stream.Finish(null, "Plain words"));
    }

    [Theory]
    [InlineData("hermes")]
    [InlineData("mistral")]
    [InlineData("llama3-json")]
    [InlineData("functionary-v3.1")]
    [InlineData("firefunction-v2")]
    public void AForcedCallStreamsFromTheOpeningInThePrompt(string syntaxName)
    {
        var (syntax, reasoning) = Of(syntaxName);
        var forced = syntax.Force(WeatherTool);
        // What the model writes after the opening, held to the schema: the call's JSON as its syntax lays it out.
        string generated = syntaxName == "functionary-v3.1" ? "{\"city\": \"Paris\"}"
            : Weather.Replace("arguments", syntaxName == "llama3-json" ? "parameters" : "arguments");
        var whole = syntax.ReadCalls(generated, WeatherTool, reasoning, forced)!;
        foreach (var pieces in Cuts(generated))
        {
            var stream = new ToolReplyStream(syntax, reasoning, forced);
            var streamed = new List<ToolCallDelta>();
            foreach (string piece in pieces)
            {
                Assert.Equal(("", ""), stream.Append(piece));
                streamed.AddRange(stream.TakeCallDeltas());
            }
            Assert.Equal(whole.Calls.Select(c => (c.Name, c.Arguments)), Joined(streamed).Select(c => (c.Name, c.Arguments)));
            Assert.Empty(stream.FinishCalls(whole.Calls)!);
        }
    }

    [Fact]
    public void ASpecialTokenTheTextDoesNotShowHoldsTheRest()
    {
        var llama3 = TokenizerFixtures.FromGguf(Path.Combine(TokenizerFixtures.TokenizerDir, "ggml-vocab-llama3.gguf"));
        var (syntax, reasoning) = Of("llama3-json");
        // This vocabulary (Llama 3.0) has no <|python_tag|>; any control token is hidden alike.
        int header = llama3.Encode("<|start_header_id|>", addSpecial: false, parseSpecial: true).Single();
        int eot = llama3.Encode("<|eot_id|>", addSpecial: false, parseSpecial: true).Single();
        int hello = llama3.Encode("Hello", addSpecial: false, parseSpecial: false).Single();

        var stream = new ToolReplyStream(syntax, reasoning);
        stream.Generated(llama3, hello);
        Assert.Equal("Hello", stream.Append("Hello").Content);
        // The end of a turn is no marker: text after it would still show.
        Assert.Equal("", stream.Generated(llama3, eot));
        Assert.Equal(" there", stream.Append(" there").Content);
        // A control token shows no text (Llama 3.1's <|python_tag|> is one), and what follows may be a call's.
        // Its rendered text goes back for the caller to append in its place.
        Assert.Equal("<|start_header_id|>", stream.Generated(llama3, header));
        Assert.Equal("", stream.Append("<|start_header_id|> more").Content);
        Assert.Equal(" more", stream.Finish(null, "Hello there more").Content);
    }

    private const string Trip = "{\"name\": \"book_trip\", \"arguments\": {\"to\": \"Z\u00fcrich \\\"old town\\\" {centre}\", \"days\": [1, 2.5e1], " +
                                "\"opts\": {\"rail\": true, \"note\": null}}}";

    /// <summary>More replies whose calls stream in their syntax (beside those in <see cref="Replies"/>): one or several calls, escapes, nesting, braces in strings, keys in either order.</summary>
    public static TheoryData<string, string> StreamedCalls()
    {
        var data = new TheoryData<string, string>();
        void Add(string syntax, params string[] replies)
        {
            foreach (string r in replies) data.Add(syntax, r);
        }
        Add("hermes", "<tool_call>" + Weather + "</tool_call>\n<tool_call>\n" + Trip + "\n</tool_call>",
            "<tool_call>{\"arguments\": {\"city\": \"Oslo\"}, \"name\": \"get_weather\"}</tool_call>",
            "<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>", "<tool_call>\n" + Trip);
        Add("mistral", "[TOOL_CALLS] [" + Weather + ", " + Trip + "]",
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123XYZ\"}]");
        Add("llama3-json", "  {\"name\": \"book_trip\", \"parameters\": {\"to\": \"}{\", \"n\": [[1], {}]}}\n");
        Add("functionary-v3.1", "<function=get_weather>\n{\"city\": \"Paris\"}\n</function><function=book_trip>{\"to\": \"Z\u00fcrich\", \"days\": [1, 2]}</function>");
        Add("functionary-v3.2", "get_weather\n{\"city\": \"Paris\"}>>>book_trip\n{\"to\": \">>\"}");
        Add("deepseek-r1", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>" +
            "<｜tool▁call▁begin｜>function<｜tool▁sep｜>book_trip\n```json\n{\"to\": \"Oslo\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
        Add("firefunction-v2", "functools[" + Weather + ", " + Trip + "]");
        Add("pipe-tagged", "<|tool_call|>[" + Weather + ", " + Trip + "]",
            "<|tool_call|>" + Weather + "<|/tool_call|><|tool_call|>" + Trip + "<|/tool_call|>");
        return data;
    }

    /// <summary>Streams <paramref name="pieces"/>: the call deltas taken while they came, and those <see cref="ToolReplyStream.FinishCalls"/> adds (null: it found a disagreement).</summary>
    private static (List<ToolCallDelta> Streamed, IReadOnlyList<ToolCallDelta>? Finished) StreamCalls(ToolCallSyntax syntax, ReplySplitting? reasoning,
        IEnumerable<string> pieces, IReadOnlyList<ChatToolCall> calls)
    {
        var stream = new ToolReplyStream(syntax, reasoning);
        var streamed = new List<ToolCallDelta>();
        foreach (string piece in pieces)
        {
            stream.Append(piece);
            streamed.AddRange(stream.TakeCallDeltas());
        }
        return (streamed, stream.FinishCalls(calls));
    }

    /// <summary>Deltas joined as a client joins them: per index, the id and name of its first delta and its fragments in order.</summary>
    private static List<ChatToolCall> Joined(IEnumerable<ToolCallDelta> deltas)
    {
        var calls = new List<ChatToolCall>();
        foreach (var d in deltas)
        {
            if (d.Index == calls.Count)
            {
                Assert.False(string.IsNullOrEmpty(d.Id), "a call's first delta carries its id");
                Assert.False(string.IsNullOrEmpty(d.Name), "a call's first delta carries its name");
                calls.Add(new ChatToolCall(d.Id!, d.Name!, d.Arguments));
                continue;
            }
            Assert.True(d.Index == calls.Count - 1, $"delta for call {d.Index} after call {calls.Count - 1} began");
            Assert.Null(d.Id);
            Assert.Null(d.Name);
            calls[^1] = calls[^1] with { Arguments = calls[^1].Arguments + d.Arguments };
        }
        return calls;
    }

    [Theory]
    [MemberData(nameof(StreamedCalls))]
    [MemberData(nameof(Replies))]
    public void TheStreamedCallsAddUpToTheWholeReading(string syntaxName, string reply)
    {
        var (syntax, reasoning) = Of(syntaxName);
        var whole = Whole(syntax, reasoning, reply);
        foreach (var pieces in Cuts(reply))
        {
            string cut = string.Join("|", pieces);
            var (streamed, finished) = StreamCalls(syntax, reasoning, pieces, whole.Calls);
            Assert.True(finished != null, $"the whole reading disagrees with what streamed of [{cut}]");
            var joined = Joined([.. streamed, .. finished!]);
            Assert.Equal(whole.Calls.Select(c => (c.Name, c.Arguments)), joined.Select(c => (c.Name, c.Arguments)));
            Assert.Equal(joined.Count, joined.Select(c => c.Id).Distinct().Count());
            // The whole text came before the end: every call streamed whole, in a syntax whose calls stream.
            if (syntaxName is not ("qwen3-coder" or "harmony" or "command-r7b"))
                Assert.Equal(whole.Calls.Select(c => (c.Name, c.Arguments)), Joined(streamed).Select(c => (c.Name, c.Arguments)));
        }
    }

    [Fact]
    public void ACallsNameGoesOutOnceItsArgumentsBeginAndThenTheirTextAsItComes()
    {
        var (syntax, reasoning) = Of("hermes");
        var stream = new ToolReplyStream(syntax, reasoning);
        stream.Append("Sure.<tool_call>\n{\"name\": \"get_wea");
        Assert.Empty(stream.TakeCallDeltas());
        stream.Append("ther\", \"arguments\": ");
        Assert.Empty(stream.TakeCallDeltas());
        stream.Append("{\"ci");
        var first = stream.TakeCallDeltas();
        Assert.Equal(2, first.Count);
        Assert.Equal((0, "get_weather", ""), (first[0].Index, first[0].Name, first[0].Arguments));
        Assert.StartsWith("call_", first[0].Id);
        Assert.Equal(new ToolCallDelta(0, null, null, "{\"ci"), first[1]);
        stream.Append("ty\": \"Paris\"}}\n</tool_call>");
        Assert.Equal([new ToolCallDelta(0, null, null, "ty\": \"Paris\"}")], stream.TakeCallDeltas());
        Assert.Equal("Sure.", stream.ShownContent);
        // The whole reading agrees: nothing is left to send.
        Assert.Empty(stream.FinishCalls(Whole(syntax, reasoning, "Sure.<tool_call>\n" + Weather + "\n</tool_call>").Calls)!);
    }

    [Fact]
    public void AMistralCallStreamsWithAnIdInItsTemplatesShape()
    {
        var (syntax, reasoning) = Of("mistral");
        var stream = new ToolReplyStream(syntax, reasoning);
        stream.Append("[TOOL_CALLS][" + Weather);
        string id = stream.TakeCallDeltas()[0].Id!;
        Assert.True(id.Length == 9 && id.All(char.IsAsciiLetterOrDigit), id);
    }

    /// <summary>Replies that begin like a call, which streams, and that the whole reading does not read as that call.</summary>
    [Theory]
    [InlineData("hermes", "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}} oops</tool_call>")]
    [InlineData("hermes", "Cut short by max_tokens: <tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1")]
    [InlineData("llama3-json", "{\"name\": \"f\", \"parameters\": {\"a\": 1}} and then some text")]
    [InlineData("mistral", "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"nam")]
    [InlineData("functionary-v3.1", "<function=f>{\"a\": 1")]
    [InlineData("firefunction-v2", "functools[{\"name\": \"f\", \"arguments\": {\"a\": 1}} and text]")]
    public void AReplyWhoseWholeReadingDisagreesWithWhatStreamedIsToldApart(string syntaxName, string reply)
    {
        var (syntax, reasoning) = Of(syntaxName);
        var whole = Whole(syntax, reasoning, reply);
        foreach (var pieces in Cuts(reply))
        {
            var (streamed, finished) = StreamCalls(syntax, reasoning, pieces, whole.Calls);
            Assert.NotEmpty(streamed);
            Assert.Null(finished);
        }
    }

    [Theory]
    [InlineData("abc", "abcdef", "def")]
    [InlineData("  abc", "abc def", " def")]
    [InlineData("abc", "abc", "")]
    [InlineData("", "xyz", "xyz")]
    // Not reached by the syntaxes; the rest starts where the two part rather than repeating what was shown.
    [InlineData("abX", "abcd", "cd")]
    public void TheRestFollowsWhatWasShown(string shown, string whole, string rest) => Assert.Equal(rest, ToolReplyStream.Rest(shown, whole));
}
