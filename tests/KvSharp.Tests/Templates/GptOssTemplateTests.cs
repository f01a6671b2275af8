using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// gpt-oss's official chat template (openai/gpt-oss-20b and -120b, the one their GGUF files carry; stored in
/// jinja2-more-templates.json) renders the Harmony prompt for what a chat sends: the system block with the date and
/// reasoning effort, a system message as the developer's instructions, earlier assistant turns without their thinking,
/// tools as a TypeScript namespace (typed, optional, enum, defaulted, nested and union parameters), a call as a
/// commentary message to functions.NAME with its arguments as JSON and a tool's result as that function's message. The
/// expected texts follow the template's logic step by step (and match Python Jinja2 3.1.6 set up as Hugging Face does).
/// </summary>
public class GptOssTemplateTests
{
    private static readonly ChatTemplate Template = ChatTemplate.Parse(
        TemplateTestData.Load("jinja2-more-templates.json").GetProperty("templates").GetProperty("extra__openai-gpt-oss-120b.jinja").GetString()!, "gpt-oss")
        .WithClock(() => TemplateTestData.FixedNow);

    private const string System = "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2024-07-26\n\n"
                                  + "Reasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.";

    private static string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, IReadOnlyDictionary<string, object?>? extra = null) =>
        Template.Render(messages, addGenerationPrompt, extra: extra).Text;

    [Fact]
    public void UserTurnEndsWithTheAssistantsHeaderOpen() =>
        Assert.Equal(System + "<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant", Render([ChatMessage.User("Hi")]));

    [Fact]
    public void ReasoningEffortGoesIntoTheSystemBlock() =>
        Assert.Equal(System.Replace("Reasoning: medium", "Reasoning: high") + "<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant",
            Render([ChatMessage.User("Hi")], extra: new Dictionary<string, object?> { ["reasoning_effort"] = "high" }));

    [Fact]
    public void SystemMessageIsTheDevelopersInstructions() =>
        Assert.Equal(System + "<|end|><|start|>developer<|message|># Instructions\n\nBe brief.\n\n<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant",
            Render([ChatMessage.System("Be brief."), ChatMessage.User("Hi")]));

    [Fact]
    public void EarlierAssistantTurnsAreFinalMessagesWithoutTheirThinking() =>
        Assert.Equal(System + "<|end|><|start|>user<|message|>What is 2+2?<|end|><|start|>assistant<|channel|>final<|message|>4<|end|>"
                     + "<|start|>user<|message|>And 3+3?<|end|><|start|>assistant",
            Render([ChatMessage.User("What is 2+2?"), ChatMessage.Assistant("4") with { Reasoning = "Simple sum." }, ChatMessage.User("And 3+3?")]));

    [Fact]
    public void TrainingTranscriptKeepsTheLastTurnsThinkingAndEndsWithReturn() =>
        Assert.Equal(System + "<|end|><|start|>user<|message|>What is 2+2?<|end|><|start|>assistant<|channel|>analysis<|message|>Simple sum.<|end|>"
                     + "<|start|>assistant<|channel|>final<|message|>4<|return|>",
            Render([ChatMessage.User("What is 2+2?"), ChatMessage.Assistant("4") with { Reasoning = "Simple sum." }], addGenerationPrompt: false));

    [Fact]
    public void ChannelTagsInAnAssistantsContentAreRefused()
    {
        var e = Assert.Throws<TemplateException>(() => Render([ChatMessage.User("Hi"), ChatMessage.Assistant("<|channel|>final<|message|>Hello"), ChatMessage.User("Again")]));
        Assert.Contains("<|channel|> tags in the content field", e.Message);
    }

    private static readonly JsonElement Tools = JsonDocument.Parse("""
        [{"type": "function", "function": {"name": "search_flights", "description": "Find flights between two airports",
          "parameters": {"type": "object", "properties": {
            "origin": {"type": "string", "description": "IATA code of the departure airport"},
            "destination": {"type": "string"},
            "cabin": {"type": "string", "enum": ["economy", "business", "first"], "default": "economy"},
            "passengers": {"type": "integer", "description": "How many travel", "default": 1},
            "flexible": {"type": "boolean"},
            "stops": {"type": "array", "items": {"type": "string"}},
            "filters": {"type": "object", "properties": {"max_price": {"type": "number"}, "airlines": {"type": "array", "items": {"type": "string"}}}, "required": ["max_price"]},
            "legs": {"type": "array", "items": {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]}},
            "note": {"type": ["string", "null"]}},
          "required": ["origin", "destination"]}}},
         {"type": "function", "function": {"name": "get_time", "description": "The current time", "parameters": {"type": "object", "properties": {}}}}]
        """).RootElement.Clone();

    /// <summary>
    /// A tool round: the developer message lists the functions (a nested object's properties are printed after a
    /// newline and the indentation of the template's own line, as the template's unstripped {{ }} leaves them); the
    /// first call, answered by a later final message, loses its thinking, the last keeps it; the results are JSON strings.
    /// </summary>
    [Fact]
    public void ToolsAreATypeScriptNamespaceAndCallsCommentaryMessages()
    {
        ChatMessage[] messages =
        [
            ChatMessage.System("Be brief."),
            ChatMessage.User("Find me a flight from OSL to CDG."),
            new("assistant", "") { Reasoning = "Need to search flights.", ToolCalls = [new ChatToolCall("call_1", "search_flights", """{"origin":"OSL","destination":"CDG","passengers":2}""")] },
            ChatMessage.Tool("""{"flights": ["SK831"]}""", "call_1"),
            ChatMessage.Assistant("SK831 departs at 07:00."),
            ChatMessage.User("Thanks! What time is it?"),
            new("assistant", "") { Reasoning = "User wants the time.", ToolCalls = [new ChatToolCall("call_2", "get_time", "{}")] },
            ChatMessage.Tool("12:00", "call_2"),
        ];
        const string indent = "\n                ";
        string expected = System + "\nCalls to these tools must go to the commentary channel: 'functions'.<|end|>"
            + "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n"
            + "// Find flights between two airports\ntype search_flights = (_: {\n"
            + "// IATA code of the departure airport\norigin: string,\n"
            + "destination: string,\n"
            + "cabin?: \"economy\" | \"business\" | \"first\", // default: economy,\n"
            + "// How many travel\npassengers?: number, // default: 1,\n"
            + "flexible?: boolean,\n"
            + "stops?: string[],\n"
            + "filters?: {\nmax_price: " + indent + "number, airlines?: " + indent + "string[]},\n"
            + "legs?: {\ndate: " + indent + "string}[],\n"
            + "note?: string | null,\n"
            + "}) => any;\n\n"
            + "// The current time\ntype get_time = () => any;\n\n"
            + "} // namespace functions<|end|>"
            + "<|start|>user<|message|>Find me a flight from OSL to CDG.<|end|>"
            + "<|start|>assistant to=functions.search_flights<|channel|>commentary json<|message|>{\"origin\": \"OSL\", \"destination\": \"CDG\", \"passengers\": 2}<|call|>"
            + "<|start|>functions.search_flights to=assistant<|channel|>commentary<|message|>\"{\\\"flights\\\": [\\\"SK831\\\"]}\"<|end|>"
            + "<|start|>assistant<|channel|>final<|message|>SK831 departs at 07:00.<|end|>"
            + "<|start|>user<|message|>Thanks! What time is it?<|end|>"
            + "<|start|>assistant<|channel|>analysis<|message|>User wants the time.<|end|>"
            + "<|start|>assistant to=functions.get_time<|channel|>commentary json<|message|>{}<|call|>"
            + "<|start|>functions.get_time to=assistant<|channel|>commentary<|message|>\"12:00\"<|end|>"
            + "<|start|>assistant";
        Assert.True(Template.RequiresObjectArguments);
        Assert.Equal(expected, Render(messages, extra: new Dictionary<string, object?> { ["tools"] = Tools }));
    }
}
