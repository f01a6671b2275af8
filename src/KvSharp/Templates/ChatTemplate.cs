using System.Collections;
using System.Text.Json;
using KvSharp.Gguf;
using KvSharp.Tokenization;

namespace KvSharp.Templates;

/// <summary>
/// A model's chat template: the Jinja text (GGUF <c>tokenizer.chat_template</c>, a file, or a built-in) that turns a
/// list of messages into the prompt the model was trained on. Rendered as Hugging Face renders it (Jinja2 with
/// trim_blocks and lstrip_blocks, raise_exception, strftime_now, tojson); a template that rejects or drops the
/// system role gets the system text prepended to the first user message, as llama.cpp's minja does. Immutable:
/// one instance may render for many threads at once (a server's requests).
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>The GGUF metadata key that holds a model's template.</summary>
    public const string GgufKey = "tokenizer.chat_template";

    private const string SystemNeedle = "<System Needle>", UserNeedle = "<User Needle>";

    private readonly JinjaTemplate _template;

    private ChatTemplate(string name, string source, IReadOnlyList<string> stopStrings, JinjaTemplate template, Func<DateTimeOffset> clock)
    {
        Name = name;
        Source = source;
        StopStrings = stopStrings;
        _template = template;
        Clock = clock;
        SupportsSystemRole = RendersSystemRole();
        // Before this, MessageValue passes arguments as text: the probe renders them both ways.
        // An object's keys come back as JSON, or as Qwen3-Coder's XML parameters (as minja's probe now looks for too).
        RequiresObjectArguments = !RendersToolCallArguments(ProbeArguments, "{\"code\": \"print") && RendersToolCallArguments(null, "\"code\": \"print", "<parameter=code>");
    }

    /// <summary>Where the template came from: a built-in name, "gguf", or a file path.</summary>
    public string Name { get; }
    /// <summary>The Jinja text.</summary>
    public string Source { get; }
    /// <summary>Whether the template renders a system message itself; if not, <see cref="Render(IReadOnlyList{ChatMessage}, bool, string, string, IReadOnlyDictionary{string, object?}?)"/> merges it into the first user message.</summary>
    public bool SupportsSystemRole { get; }
    /// <summary>
    /// Whether the template renders a tool call's arguments only from an object, not from their JSON text (Qwen 2.5,
    /// Llama 3.x and Mistral print them with tojson, Qwen3-Coder as one parameter per key): those get the arguments parsed; the others (Hermes, Functionary)
    /// their text, as OpenAI sends them. minja's probe (llama.cpp's requires_object_arguments).
    /// </summary>
    public bool RequiresObjectArguments { get; }
    /// <summary>Extra stop strings for generation after this template's prompt (the plain transcript stops at the next "User:").</summary>
    public IReadOnlyList<string> StopStrings { get; }
    /// <summary>The clock strftime_now reads (Llama 3.x templates print today's date); default: the current UTC time.</summary>
    public Func<DateTimeOffset> Clock { get; }

    /// <summary>The same template reading another clock (tests pin the date Llama 3.x templates print).</summary>
    public ChatTemplate WithClock(Func<DateTimeOffset> clock)
    {
        ArgumentNullException.ThrowIfNull(clock);
        return new ChatTemplate(Name, Source, StopStrings, _template, clock);
    }

    /// <summary>Parses template text. <paramref name="name"/> appears in error messages.</summary>
    /// <exception cref="TemplateException">A syntax error, with its line and column.</exception>
    public static ChatTemplate Parse(string source, string name = "template", IReadOnlyList<string>? stopStrings = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(name, source, stopStrings ?? [], JinjaTemplate.Parse(source, name), () => DateTimeOffset.UtcNow);
    }

    /// <summary>Reads a template file (a .jinja file, or any text file holding the template).</summary>
    public static ChatTemplate FromFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"chat template file not found: {path}", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>The names <see cref="BuiltIn"/> knows, for help texts and errors.</summary>
    public static IReadOnlyList<string> BuiltInNames => BuiltInChatTemplates.Names;

    /// <summary>A built-in template by name (chatml, llama2, llama3, mistral, gemma, phi3, zephyr, ..., plain).</summary>
    public static ChatTemplate BuiltIn(string name)
    {
        if (!BuiltInChatTemplates.TryGet(name, out var source, out var stops))
            throw new ArgumentException($"unknown chat template '{name}' (built-in: {string.Join(", ", BuiltInNames)})", nameof(name));
        return Parse(source, name.ToLowerInvariant(), stops);
    }

    /// <summary>The template a GGUF file carries in <c>tokenizer.chat_template</c>, or null.</summary>
    public static ChatTemplate? FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.Metadata.TryGetValue(GgufKey, out var value)) return null;
        if (value.Value is not string source)
            throw new InvalidDataException($"{file.Path}: {GgufKey} has type {value.Type}, expected a string");
        try
        {
            return Parse(source, "gguf");
        }
        catch (TemplateException e)
        {
            throw new TemplateException($"{GgufKey} of {file.Path}", e.Line, e.Column, e.Reason);
        }
    }

    /// <summary>
    /// The template for a model: <paramref name="nameOrFile"/> when given (a built-in name, else a file), else the
    /// GGUF's own, else the fallback: ChatML when the vocabulary has &lt;|im_start|&gt; (an instruct model converted
    /// without its template, as llama.cpp assumes), otherwise "plain" (User:/Assistant: turns a base model can continue).
    /// </summary>
    public static ChatTemplate Resolve(string? nameOrFile, GgufFile? gguf, ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (nameOrFile != null)
        {
            if (BuiltInChatTemplates.TryGet(nameOrFile, out _, out _)) return BuiltIn(nameOrFile);
            if (File.Exists(nameOrFile)) return FromFile(nameOrFile);
            throw new ArgumentException($"--chat-template '{nameOrFile}' is neither a built-in template ({string.Join(", ", BuiltInNames)}) nor a file");
        }
        if (gguf != null && FromGguf(gguf) is { } own) return own;
        return BuiltIn(HasToken(tokenizer, "<|im_start|>") ? "chatml" : "plain");
    }

    /// <summary>The template for a loaded model (see <see cref="Resolve"/>).</summary>
    public static ChatTemplate ForModel(LlmModel model, string? nameOrFile = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Resolve(nameOrFile, model.Gguf, model.Tokenizer);
    }

    private static bool HasToken(ITokenizer tokenizer, string text) =>
        tokenizer is TokenizerBase t ? t.TokenId(text) >= 0 : false;

    /// <summary>
    /// The variables a render sets from its own arguments (messages, add_generation_prompt, bos_token, eos_token) and the
    /// tools a caller passes: a caller's free-form variables (chat_template_kwargs) may not name them.
    /// </summary>
    public static readonly IReadOnlyList<string> RequestVariables = ["messages", "tools", "add_generation_prompt", "bos_token", "eos_token"];

    /// <summary>
    /// Renders <paramref name="messages"/>. <paramref name="extra"/> adds variables (tools, date_string, ...): strings,
    /// numbers, bools, lists, dictionaries or JSON elements. Message fields and extra values are content: special
    /// tokens in them are never parsed (see <see cref="RenderedChat.Tokenize"/>); bos_token and eos_token are not.
    /// </summary>
    /// <exception cref="TemplateException">The template failed or called raise_exception (the message says which, where).</exception>
    public RenderedChat Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string bosToken = "", string eosToken = "",
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var effective = SupportsSystemRole ? messages : MergeSystemIntoUser(messages);
        var rendered = RenderRaw(effective, addGenerationPrompt, bosToken, eosToken, extra);
        return new RenderedChat(rendered.Text, rendered.DataRanges, bosToken, eosToken);
    }

    /// <summary>Renders with the tokenizer's BOS and EOS texts as bos_token and eos_token.</summary>
    public RenderedChat Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ITokenizer tokenizer,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return Render(messages, addGenerationPrompt, TokenText(tokenizer, tokenizer.BosId), TokenText(tokenizer, tokenizer.EosId), extra);
    }

    private static string TokenText(ITokenizer tokenizer, int id) => id >= 0 && id < tokenizer.VocabSize ? tokenizer.TokenText(id) : "";

    private MarkedString RenderRaw(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string bos, string eos,
        IReadOnlyDictionary<string, object?>? extra, bool? objectArguments = null)
    {
        bool asObject = objectArguments ?? RequiresObjectArguments;
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (extra != null)
            foreach (var (k, v) in extra) variables[k] = FromDotNet(v, k);
        variables["messages"] = messages.Select(m => (object?)MessageValue(m, asObject)).ToList();
        variables["add_generation_prompt"] = addGenerationPrompt;
        // Hugging Face passes tools=None when there are none (templates test "tools is not none"); llama.cpp leaves
        // them undefined. Models' templates are written for the first.
        variables.TryAdd("tools", null);
        variables["bos_token"] = MarkedString.Plain(bos);
        variables["eos_token"] = MarkedString.Plain(eos);
        return _template.Render(variables, Clock());
    }

    private const string ProbeArguments = "{\"code\": \"print('Hello, World!')\"}";

    /// <summary>
    /// Renders a user message and an assistant's tool call with <paramref name="arguments"/> as text (null: as the
    /// object they spell) and looks for any of <paramref name="needles"/> (minja's capability probe).
    /// </summary>
    private bool RendersToolCallArguments(string? arguments, params string[] needles)
    {
        var call = new ChatMessage("assistant", "") { ToolCalls = [new ChatToolCall("call00001", "ipython", arguments ?? ProbeArguments)] };
        try
        {
            string text = RenderRaw([ChatMessage.User("Hey"), call], false, "", "", null, objectArguments: arguments == null).Text;
            return needles.Any(needle => text.Contains(needle, StringComparison.Ordinal));
        }
        catch (TemplateException)
        {
            return false;
        }
    }

    /// <summary>Renders a system and a user message and looks for the system text (minja's capability probe).</summary>
    private bool RendersSystemRole()
    {
        try
        {
            var text = RenderRaw([ChatMessage.System(SystemNeedle), ChatMessage.User(UserNeedle)], false, "", "", null).Text;
            return text.Contains(SystemNeedle, StringComparison.Ordinal);
        }
        catch (TemplateException)
        {
            return false;
        }
    }

    /// <summary>System messages joined (by "\n") onto the next user message; a system message before another role becomes a user message.</summary>
    private static List<ChatMessage> MergeSystemIntoUser(IReadOnlyList<ChatMessage> messages)
    {
        var result = new List<ChatMessage>(messages.Count);
        string pending = "";
        foreach (var m in messages)
        {
            if (m.Role == "system")
            {
                pending = pending.Length == 0 ? m.Content : pending + "\n" + m.Content;
                continue;
            }
            if (pending.Length > 0)
            {
                if (m.Role == "user")
                {
                    result.Add(m with { Content = m.Content.Length == 0 ? pending : pending + "\n" + m.Content });
                    pending = "";
                    continue;
                }
                result.Add(ChatMessage.User(pending));
                pending = "";
            }
            result.Add(m);
        }
        if (pending.Length > 0) result.Add(ChatMessage.User(pending));
        return result;
    }

    /// <summary>
    /// A message as templates read it (Hugging Face's shape): role and content; an assistant's reasoning (as
    /// reasoning_content and as thinking) and tool_calls, each
    /// {id, type: "function", function: {name, arguments}} with the arguments as an object where the template needs
    /// one (<see cref="RequiresObjectArguments"/>) and they are a JSON object, else their text; a tool turn's
    /// tool_call_id and name.
    /// </summary>
    private static JinjaDict MessageValue(ChatMessage m, bool objectArguments)
    {
        var d = new JinjaDict { ["role"] = MarkedString.Data(m.Role), ["content"] = MarkedString.Data(m.Content) };
        if (m.ToolCalls is { Count: > 0 } calls)
            d["tool_calls"] = calls.Select(c => (object?)new JinjaDict
            {
                ["id"] = MarkedString.Data(c.Id),
                ["type"] = MarkedString.Data("function"),
                ["function"] = new JinjaDict { ["name"] = MarkedString.Data(c.Name), ["arguments"] = objectArguments ? ArgumentsValue(c.Arguments) : MarkedString.Data(c.Arguments) },
            }).ToList();
        if (m.Reasoning != null) d["reasoning_content"] = d["thinking"] = MarkedString.Data(m.Reasoning);
        if (m.ToolCallId != null) d["tool_call_id"] = MarkedString.Data(m.ToolCallId);
        if (m.Name != null) d["name"] = MarkedString.Data(m.Name);
        return d;
    }

    private static object? ArgumentsValue(string arguments)
    {
        try
        {
            using var doc = JsonDocument.Parse(arguments);
            if (doc.RootElement.ValueKind == JsonValueKind.Object) return FromJson(doc.RootElement);
        }
        catch (JsonException) { }
        return MarkedString.Data(arguments);
    }

    /// <summary>A caller's value as a template value; strings are content.</summary>
    private static object? FromDotNet(object? value, string name) => value switch
    {
        null => null,
        string s => MarkedString.Data(s),
        bool b => b,
        int or long or short or byte or uint => Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture),
        float or double or decimal => Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture),
        JsonElement e => FromJson(e),
        IDictionary<string, object?> d => ToDict(d.Select(kv => (kv.Key, FromDotNet(kv.Value, name)))),
        IDictionary d => ToDict(d.Keys.Cast<object>().Select(k => (k.ToString() ?? "", FromDotNet(d[k], name)))),
        IEnumerable list => list.Cast<object?>().Select(x => FromDotNet(x, name)).ToList(),
        _ => throw new ArgumentException($"extra template variable '{name}' has type {value.GetType().Name}: use strings, numbers, bools, lists, dictionaries or JsonElement"),
    };

    private static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => MarkedString.Data(e.GetString()!),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? (object)l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.Object => ToDict(e.EnumerateObject().Select(p => (p.Name, FromJson(p.Value)))),
        _ => null,
    };

    private static JinjaDict ToDict(IEnumerable<(string Key, object? Value)> entries)
    {
        var d = new JinjaDict();
        foreach (var (k, v) in entries) d[k] = v;
        return d;
    }

    public override string ToString() => Name;
}
