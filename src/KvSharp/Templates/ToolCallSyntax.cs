using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using KvSharp.Sampling;

namespace KvSharp.Templates;

/// <summary>
/// What a reply with tool calls says: its text outside the calls (trimmed) and the calls; and its reasoning where the
/// syntax reads that too (Harmony's analysis messages), else null.
/// </summary>
public sealed record ToolCallReply(string Content, IReadOnlyList<ChatToolCall> Calls, string? Reasoning = null);

/// <summary>
/// How a model family writes tool calls in its reply, told from its chat template in llama.cpp's order
/// (common/chat.cpp): DeepSeek R1 between its tool-call tokens with the arguments in a json fence, Command R7B a JSON
/// list between <c>&lt;|START_ACTION|&gt;</c> and <c>&lt;|END_ACTION|&gt;</c>, Functionary 3.2
/// <c>&gt;&gt;&gt;name\n{arguments}</c>, FireFunction 2 <c> functools[...]</c>, Qwen3-Coder
/// <c>&lt;function=name&gt;</c> with XML parameters, Hermes 2 Pro / Qwen 2.5 / Qwen 3 each in
/// <c>&lt;tool_call&gt;{"name", "arguments"}&lt;/tool_call&gt;</c>, Functionary 3.1 <c>&lt;function=name&gt;{...}&lt;/function&gt;</c>,
/// Llama 3.1-3.3 one JSON object <c>{"name", "parameters"}</c> (after <c>&lt;|python_tag|&gt;</c> or alone), Mistral
/// <c>[TOOL_CALLS]</c> and a JSON list. A call whose JSON does not parse, or
/// lacks a name, is not a call: its text stays in the content, so nothing is lost or invented. The reply is read with
/// special tokens rendered (Mistral's marker is one).
/// </summary>
public abstract partial class ToolCallSyntax
{
    /// <summary>The family's name, for messages and logs.</summary>
    public abstract string Name { get; }

    /// <summary>The syntax the template's model writes, or null when the template shows none kvsharp reads.</summary>
    public static ToolCallSyntax? Of(ChatTemplate template)
    {
        ArgumentNullException.ThrowIfNull(template);
        string s = template.Source;
        bool Has(string text) => s.Contains(text, StringComparison.Ordinal);
        if (HarmonySplitter.Applies(template)) return new Harmony();
        if (Has(DeepSeekR1.CallsBegin)) return new DeepSeekR1(fenced: Has("```json"));
        if (Has("<|END_THINKING|><|START_ACTION|>")) return new CommandR7B();
        if (Has(">>>all")) return new FunctionaryV32();
        if (Has(" functools[")) return new FireFunction();
        if (Has("<|tool_call|>")) return new PipeTagged();
        if (Has("<tool_call>") && Has("<function=") && Has("<parameter=")) return new Qwen3Coder();
        if (Has("<tool_call>")) return new Hermes();
        if (Has("<|start_header_id|>") && Has("<function=")) return new FunctionaryV31();
        if (Has("<|start_header_id|>ipython<|end_header_id|>") || Has("<|python_tag|>")) return new LlamaJson();
        if (Has("[TOOL_CALLS]")) return new Mistral();
        return null;
    }

    /// <summary>The families <see cref="Of"/> recognises, for an error naming what a template lacks.</summary>
    public const string Supported = "gpt-oss Harmony, Hermes 2 Pro / Qwen <tool_call>, Qwen3-Coder <function=...><parameter=...>, Mistral [TOOL_CALLS], Llama 3.x JSON, DeepSeek R1 and V3.1, Command R7B, Functionary 3.1 and 3.2, FireFunction 2, Granite and Phi-4-mini <|tool_call|>";

    /// <summary>
    /// A reply's generated tokens as the syntaxes read them: special tokens rendered (a family's call marker may be
    /// one), end-of-generation tokens left out.
    /// </summary>
    public static string ReplyText(KvSharp.Tokenization.ITokenizer tokenizer, IEnumerable<int> tokens) =>
        tokenizer.Decode([.. tokens.Where(t => !tokenizer.IsEndOfGeneration(t))], renderSpecial: true);

    /// <summary>Splits a reply into its text and its tool calls (none: the whole reply is content).</summary>
    public abstract ToolCallReply Parse(string reply);

    /// <summary>
    /// <see cref="Parse(string)"/> for a reply to a request with these <paramref name="tools"/> (an OpenAI-shaped list):
    /// a family that writes arguments as text reads each as its parameter's schema types it.
    /// </summary>
    public virtual ToolCallReply Parse(string reply, JsonElement tools) => Parse(reply);

    /// <summary>
    /// A whole reply to a request with these <paramref name="tools"/> read for its calls, as the server and the chat
    /// client read it: a <paramref name="forced"/> call's text between its opening and closing, thinking in tags
    /// (<paramref name="reasoning"/>) apart first (it may well mention calls), then the calls; null when it made none
    /// (the reply is then its text as generated). <paramref name="textWithSpecialTokens"/>: <see cref="ReplyText"/>.
    /// </summary>
    /// <param name="maxCalls">The most calls a reply may make (OpenAI's parallel_tool_calls false: 1); those past it are dropped, as vLLM drops them.</param>
    public ToolCallReply? ReadCalls(string textWithSpecialTokens, JsonElement tools, ReplySplitting? reasoning, ForcedToolCall? forced = null, int maxCalls = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCalls, 1);
        string rendered = forced?.Reply(textWithSpecialTokens) ?? textWithSpecialTokens;
        // Harmony's syntax reads its messages, thinking and all.
        string? thought = null;
        if (reasoning is { IsHarmony: false }) (thought, rendered) = reasoning.Split(rendered);
        var reply = Parse(rendered, tools);
        if (reply.Calls.Count > maxCalls) reply = reply with { Calls = [.. reply.Calls.Take(maxCalls)] };
        return reply.Calls.Count == 0 ? null : reply with { Reasoning = thought ?? reply.Reasoning };
    }

    /// <summary>
    /// How much of an unfinished reply (its answer, after any thinking) is text outside the calls whatever follows it:
    /// what a stream may show before the reply ends (<see cref="ToolReplyStream"/>). None by default, for a syntax whose
    /// text is not simply what comes before its first call (its reply then shows when it ends).
    /// </summary>
    public virtual int TextBefore(string reply) => 0;

    /// <summary>
    /// The calls in an unfinished reply (its answer, after any thinking) as far as they are written, in the order the
    /// whole reading gives them: each one's name once it is whole, and where its arguments' JSON object begins, so that
    /// <see cref="ToolReplyStream"/> can stream the arguments' raw text as the model writes it (the whole reading keeps
    /// that text as it is). Null for a family whose calls come whole when the reply ends.
    /// </summary>
    internal virtual IReadOnlyList<CallSoFar>? CallsSoFar(string reply) => null;

    /// <summary>An id for a call streamed before the reply is read whole, in the shape this syntax's template wants.</summary>
    internal string StreamedCallId() => NewId(null);

    /// <summary>
    /// The calls so far after each <paramref name="marker"/> in turn, as <paramref name="read"/> finds them from just
    /// past it; the search stops at a call not finished yet, or a marker after which none is found.
    /// </summary>
    private protected static List<CallSoFar> AfterEach(string reply, string marker, Func<int, IReadOnlyList<CallSoFar>> read)
    {
        var calls = new List<CallSoFar>();
        for (int at = reply.IndexOf(marker, StringComparison.Ordinal); at >= 0; at = reply.IndexOf(marker, calls[^1].End, StringComparison.Ordinal))
        {
            var found = read(at + marker.Length);
            calls.AddRange(found);
            if (found.Count == 0 || calls[^1].End < 0) break;
        }
        return calls;
    }

    /// <summary>
    /// The text before the first <paramref name="marker"/>, without an end that could be the marker's beginning: what
    /// comes before a syntax's first possible call, where the text before its first marker is always content.
    /// </summary>
    private protected static int BeforeMarker(string reply, string marker)
    {
        int at = reply.IndexOf(marker, StringComparison.Ordinal);
        if (at >= 0) return at;
        for (int keep = Math.Min(marker.Length - 1, reply.Length); keep > 0; keep--)
            if (reply.AsSpan(reply.Length - keep).SequenceEqual(marker.AsSpan(0, keep))) return reply.Length - keep;
        return reply.Length;
    }

    /// <summary>
    /// How a reply that must call one of <paramref name="tools"/> (an OpenAI-shaped list), or the one named
    /// <paramref name="function"/>, is written in this syntax (<see cref="ForcedToolCall"/>); <see cref="Parse"/> reads
    /// its <see cref="ForcedToolCall.Reply"/> as that call.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The function is not among the tools, a tool's parameter schema uses a keyword a constrained reply does not
    /// enforce (named with where the request holds it), or the syntax cannot hold the model to one of several tools.
    /// </exception>
    public ForcedToolCall Force(JsonElement tools, string? function = null)
    {
        var signatures = ToolSignature.Of(tools);
        if (function != null)
        {
            signatures = [.. signatures.Where(s => s.Name == function).Take(1)];
            if (signatures.Count == 0) throw new ArgumentException($"the function '{function}' is not among the tools");
        }
        // Each schema checked where the request holds it, so that an error names the tool.
        foreach (var s in signatures) JsonSchemaPrefix.For(s.Parameters, s.Path);
        return Force(signatures);
    }

    private protected abstract ForcedToolCall Force(IReadOnlyList<ToolSignature> tools);

    /// <summary>A forced call written as a JSON object that names the tool, between an opening and a closing.</summary>
    private protected static ForcedToolCall CallObject(string opening, IReadOnlyList<ToolSignature> tools, string nameKey, string argumentsKey, string closing,
        params string[] optionalStrings) =>
        new(opening, JsonSchemaPrefix.For(ToolSignature.CallObjectSchema(tools, nameKey, argumentsKey, optionalStrings), "tools"), closing);

    /// <summary>
    /// A forced call whose tool name comes before its arguments' JSON (<paramref name="lead"/>: the name and what
    /// separates it from them): with one tool its lead is part of the opening, else the model writes one of the leads.
    /// </summary>
    private protected static ForcedToolCall NamedArguments(string opening, IReadOnlyList<ToolSignature> tools, Func<string, string> lead, string closing) =>
        tools.Count == 1 ? new(opening + lead(tools[0].Name), JsonSchemaPrefix.For(tools[0].Parameters, tools[0].Path), closing)
            : new(opening, JsonSchemaPrefix.ForLeads([.. tools.Select(t => (lead(t.Name), t.Parameters, t.Path))]), closing);

    /// <summary>
    /// A call from a JSON object with its name under <paramref name="nameKey"/>, its arguments under one of
    /// <paramref name="argumentKeys"/> (an object, or its JSON text) and perhaps an id under <paramref name="idKey"/>;
    /// null when it is not one.
    /// </summary>
    private protected ChatToolCall? Call(JsonElement e, string nameKey, string[] argumentKeys, string idKey = "id")
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(nameKey, out var name) || name.ValueKind != JsonValueKind.String
            || string.IsNullOrEmpty(name.GetString()))
            return null;
        string arguments = "{}";
        foreach (string key in argumentKeys)
            if (e.TryGetProperty(key, out var a))
            {
                arguments = a.ValueKind switch
                {
                    JsonValueKind.String => a.GetString()!,
                    JsonValueKind.Object => a.GetRawText(),
                    _ => "",
                };
                if (arguments.Length == 0) return null;
                break;
            }
        string? given = e.TryGetProperty(idKey, out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
        return new ChatToolCall(NewId(given), name.GetString()!, arguments);
    }

    /// <summary>The call id: the model's where it gave one this syntax accepts, else a fresh one.</summary>
    private protected virtual string NewId(string? given) => FreshId();

    /// <summary>A new call id in OpenAI's shape, for a call whose syntax gives none.</summary>
    internal static string FreshId() => "call_" + RandomAlphanumeric(24);

    private protected static string RandomAlphanumeric(int length) =>
        RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", length);

    private protected static JsonElement? ParseJson(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Calls from a JSON list of objects (keys as in <see cref="Call"/>); null when the text is not such a list, or one item not a call.</summary>
    private protected List<ChatToolCall>? CallList(string json, string nameKey, string[] argumentKeys, string idKey = "id")
    {
        if (ParseJson(json) is not { ValueKind: JsonValueKind.Array } list) return null;
        var calls = new List<ChatToolCall>();
        foreach (var e in list.EnumerateArray())
        {
            if (Call(e, nameKey, argumentKeys, idKey) is not { } call) return null;
            calls.Add(call);
        }
        return calls.Count > 0 ? calls : null;
    }

    /// <summary>
    /// Calls in the matches of <paramref name="call"/> that <paramref name="read"/> makes calls of; the text around
    /// them, and any match that holds no call, is the content.
    /// </summary>
    private protected static ToolCallReply Delimited(string reply, Regex call, Func<Match, IEnumerable<ChatToolCall>?> read)
    {
        var calls = new List<ChatToolCall>();
        var content = new System.Text.StringBuilder();
        int at = 0;
        foreach (Match m in call.Matches(reply))
        {
            if (read(m) is not { } found) continue;
            content.Append(reply, at, m.Index - at);
            at = m.Index + m.Length;
            calls.AddRange(found);
        }
        content.Append(reply, at, reply.Length - at);
        return new ToolCallReply(content.ToString().Trim(), calls);
    }

    /// <summary>A call named <paramref name="name"/> whose arguments are <paramref name="arguments"/> (a JSON object); null when they are not.</summary>
    private protected ChatToolCall? NamedCall(string name, string arguments) =>
        !string.IsNullOrWhiteSpace(name) && ParseJson(arguments) is { ValueKind: JsonValueKind.Object } a ? new ChatToolCall(NewId(null), name.Trim(), a.GetRawText()) : null;

    /// <summary>
    /// DeepSeek R1 and V3.1: its tool-call tokens around each call; R1 writes "function", the separator, the name and
    /// the arguments in a json fence, V3.1 the name, the separator and the arguments.
    /// </summary>
    private sealed partial class DeepSeekR1(bool fenced) : ToolCallSyntax
    {
        public const string CallsBegin = "<｜tool▁calls▁begin｜>";
        private const string CallBegin = "<｜tool▁call▁begin｜>", Separator = "<｜tool▁sep｜>", Ends = "<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

        /// <summary>
        /// R1 (its template fences the arguments): the name and the fence as a lead. V3.1 puts a special token between
        /// name and arguments, which a lead (text) cannot hold: one named tool only.
        /// </summary>
        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools)
        {
            if (fenced) return NamedArguments(CallsBegin + CallBegin + "function" + Separator, tools, name => name + "\n```json\n", "\n```" + Ends);
            if (tools.Count > 1)
                throw new ArgumentException("DeepSeek V3.1 writes a special token between a tool's name and its arguments: a forced call must name its function " +
                                            "(tool_choice {\"type\": \"function\", \"function\": {\"name\": ...}}), or there must be one tool");
            return NamedArguments(CallsBegin + CallBegin, tools, name => name + Separator, Ends);
        }

        public override string Name => "deepseek-r1";

        public override int TextBefore(string reply) => BeforeMarker(reply, CallsBegin);

        /// <summary>
        /// Each call after its begin token: R1's "function", separator, name, newline and json fence, or V3.1's name and
        /// separator, then the arguments' object.
        /// </summary>
        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply)
        {
            int at = reply.IndexOf(CallsBegin, StringComparison.Ordinal);
            if (at < 0) return [];
            return AfterEach(reply, CallBegin, from =>
            {
                if (from < at) return [];
                const string R1 = "function" + Separator, Fence = "\n```json\n";
                if (reply.AsSpan(from).StartsWith(R1))
                {
                    int newline = reply.IndexOf('\n', from + R1.Length);
                    if (newline < 0 || !reply.AsSpan(newline).StartsWith(Fence)) return [];
                    return [PartialJson.NamedArguments(reply, newline + Fence.Length, reply[(from + R1.Length)..newline].Trim())];
                }
                int separator = reply.IndexOf(Separator, from, StringComparison.Ordinal);
                if (separator < 0 || reply.AsSpan(from, separator - from).IndexOfAny('\n', '<') >= 0) return [];
                return [PartialJson.NamedArguments(reply, separator + Separator.Length, reply[from..separator].Trim())];
            });
        }

        [GeneratedRegex(@"<｜tool▁call▁begin｜>(?:function<｜tool▁sep｜>([^\n]+)\n```json\n(.*?)```|([^\n<]+?)<｜tool▁sep｜>(.*?))\s*<｜tool▁call▁end｜>", RegexOptions.Singleline)]
        private static partial Regex CallBlock();

        public override ToolCallReply Parse(string reply)
        {
            int at = reply.IndexOf(CallsBegin, StringComparison.Ordinal);
            if (at < 0) return new ToolCallReply(reply.Trim(), []);
            var calls = new List<ChatToolCall>();
            foreach (Match m in CallBlock().Matches(reply, at))
            {
                var (name, arguments) = m.Groups[1].Success ? (m.Groups[1].Value, m.Groups[2].Value) : (m.Groups[3].Value, m.Groups[4].Value);
                if (NamedCall(name, arguments) is not { } call) return new ToolCallReply(reply.Trim(), []);
                calls.Add(call);
            }
            return calls.Count == 0 ? new ToolCallReply(reply.Trim(), []) : new ToolCallReply(reply[..at].Trim(), calls);
        }
    }

    /// <summary>Command R7B: a JSON list of {"tool_call_id", "tool_name", "parameters"} between its action tokens; its text in a response block.</summary>
    /// <remarks>
    /// Its calls do not stream: each keeps the id the model gives it (its template hands it back with the result), which
    /// the model may write after the arguments, and a call's first streamed delta must carry its id.
    /// </remarks>
    private sealed partial class CommandR7B : ToolCallSyntax
    {
        public override string Name => "command-r7b";

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) =>
            CallObject("<|START_ACTION|>[\n    ", tools, "tool_name", "parameters", "\n]<|END_ACTION|>", "tool_call_id");

        [GeneratedRegex(@"<\|START_ACTION\|>(.*?)<\|END_ACTION\|>", RegexOptions.Singleline)]
        private static partial Regex Action();

        [GeneratedRegex(@"<\|START_RESPONSE\|>(.*?)(?:<\|END_RESPONSE\|>|$)", RegexOptions.Singleline)]
        private static partial Regex Response();

        public override ToolCallReply Parse(string reply)
        {
            var action = Action().Match(reply);
            if (action.Success && CallList(action.Groups[1].Value, "tool_name", ["parameters"], "tool_call_id") is { } calls)
                return new ToolCallReply(reply[..action.Index].Trim(), calls);
            var response = Response().Match(reply);
            return new ToolCallReply((response.Success ? response.Groups[1].Value : reply).Trim(), []);
        }

        /// <summary>The model numbers its calls itself, and its template hands those ids back with the results.</summary>
        private protected override string NewId(string? given) => string.IsNullOrEmpty(given) ? base.NewId(null) : given;
    }

    /// <summary>Functionary 3.2: the reply is >>>-separated parts, "all\n" then text, or a function's name, a newline and its arguments.</summary>
    private sealed class FunctionaryV32 : ToolCallSyntax
    {
        public override string Name => "functionary-v3.2";

        /// <summary>The generation prompt ends with ">>>": the tool's name, a newline, its arguments.</summary>
        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) => NamedArguments("", tools, name => name + "\n", "");

        /// <summary>Each part a function's name and a newline (not "all", which opens text), then its arguments' object.</summary>
        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply)
        {
            var calls = new List<CallSoFar>();
            for (int at = 0; at <= reply.Length;)
            {
                int next = reply.IndexOf(">>>", at, StringComparison.Ordinal), newline = reply.IndexOf('\n', at);
                string head = newline < 0 ? "" : reply[at..newline];
                if (newline >= 0 && (next < 0 || newline < next) && head != "all" && head.Length > 0 && head.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                {
                    var call = PartialJson.NamedArguments(reply, newline + 1, head);
                    if (call.ArgumentsAt < 0 || (next >= 0 && call.End < 0)) break;
                    calls.Add(call);
                    if (call.End < 0) break;
                }
                if (next < 0) break;
                at = next + 3;
            }
            return calls;
        }

        public override ToolCallReply Parse(string reply)
        {
            var calls = new List<ChatToolCall>();
            var content = new System.Text.StringBuilder();
            foreach (string part in reply.Split(">>>"))
            {
                int newline = part.IndexOf('\n');
                string head = newline < 0 ? part : part[..newline], body = newline < 0 ? "" : part[(newline + 1)..];
                if (head == "all") content.Append(body);
                else if (head.Length > 0 && head.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') && NamedCall(head, body) is { } call) calls.Add(call);
                else content.Append(part);
            }
            return calls.Count == 0 ? new ToolCallReply(reply.StartsWith("all\n", StringComparison.Ordinal) ? reply[4..].Trim() : reply.Trim(), [])
                : new ToolCallReply(content.ToString().Trim(), calls);
        }
    }

    /// <summary>FireFunction 2: " functools" and a JSON list of {"name", "arguments"}.</summary>
    private sealed class FireFunction : ToolCallSyntax
    {
        private const string Marker = "functools[";

        public override string Name => "firefunction-v2";

        public override int TextBefore(string reply) => BeforeMarker(reply, Marker);

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) => CallObject(" " + Marker, tools, "name", "arguments", "]");

        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply)
        {
            int at = reply.IndexOf(Marker, StringComparison.Ordinal);
            return at < 0 ? [] : PartialJson.CallList(reply, at + Marker.Length - 1, "name", ["arguments"]);
        }

        public override ToolCallReply Parse(string reply)
        {
            int at = reply.IndexOf(Marker, StringComparison.Ordinal);
            return at >= 0 && CallList(reply[(at + Marker.Length - 1)..].Trim(), "name", ["arguments"]) is { } calls
                ? new ToolCallReply(reply[..at].Trim(), calls)
                : new ToolCallReply(reply.Trim(), []);
        }
    }

    /// <summary>Functionary 3.1 (Llama 3.1): each call <c>&lt;function=name&gt;{arguments}&lt;/function&gt;</c>.</summary>
    private sealed partial class FunctionaryV31 : ToolCallSyntax
    {
        public override string Name => "functionary-v3.1";

        public override int TextBefore(string reply) => BeforeMarker(reply, "<function=");

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) => NamedArguments("<function=", tools, name => name + ">", "</function>");

        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply) => AfterEach(reply, "<function=", from =>
        {
            int close = reply.IndexOf('>', from);
            string name = close < 0 ? "" : reply[from..close];
            return name.Length > 0 && name.All(c => char.IsLetterOrDigit(c) || c == '_') ? [PartialJson.NamedArguments(reply, close + 1, name)] : [];
        });

        [GeneratedRegex(@"<function=(\w+)>(.*?)</function>", RegexOptions.Singleline)]
        private static partial Regex Function();

        public override ToolCallReply Parse(string reply) =>
            Delimited(reply, Function(), m => NamedCall(m.Groups[1].Value, m.Groups[2].Value) is { } call ? [call] : null);
    }

    /// <summary>Granite 3 and Phi-4-mini: <c>&lt;|tool_call|&gt;</c>, then a call object or a list of them (Phi-4-mini closes each with <c>&lt;|/tool_call|&gt;</c>).</summary>
    private sealed partial class PipeTagged : ToolCallSyntax
    {
        public override string Name => "pipe-tagged";

        public override int TextBefore(string reply) => BeforeMarker(reply, "<|tool_call|>");

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) => CallObject("<|tool_call|>[", tools, "name", "arguments", "]");

        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply) => AfterEach(reply, "<|tool_call|>", from =>
        {
            int at = PartialJson.SkipWhitespace(reply, from);
            return at < reply.Length && reply[at] == '[' ? PartialJson.CallList(reply, at, "name", ["arguments", "parameters"])
                : PartialJson.CallObject(reply, at, "name", ["arguments", "parameters"]) is { } call ? [call] : [];
        });

        [GeneratedRegex(@"<\|tool_call\|>\s*(.*?)\s*(?:<\|/tool_call\|>|$)", RegexOptions.Singleline)]
        private static partial Regex Block();

        public override ToolCallReply Parse(string reply) => Delimited(reply, Block(), m =>
            m.Groups[1].Value.TrimStart().StartsWith('[') ? CallList(m.Groups[1].Value, "name", ["arguments", "parameters"])
            : ParseJson(m.Groups[1].Value) is { } one && Call(one, "name", ["arguments", "parameters"]) is { } call ? [call] : null);
    }

    /// <summary>
    /// Qwen3-Coder: each call between &lt;tool_call&gt; tags as <c>&lt;function=name&gt;</c> and one
    /// <c>&lt;parameter=key&gt;\nvalue\n&lt;/parameter&gt;</c> per argument, the value as text (vLLM's qwen3_coder
    /// parser): a string parameter keeps it, another type reads it as JSON (Python's True/False too), and a value that
    /// does not read as its type stays a string.
    /// </summary>
    /// <remarks>
    /// Its calls do not stream (<see cref="CallsSoFar"/>): their arguments are no text the model writes but a JSON object
    /// built from the parameters, each value typed by the request's schema and known only at its closing tag, and
    /// serialised when the reply is read.
    /// </remarks>
    private sealed partial class Qwen3Coder : ToolCallSyntax
    {
        public override string Name => "qwen3-coder";

        public override int TextBefore(string reply) => BeforeMarker(reply, "<tool_call>");

        [GeneratedRegex(@"<tool_call>\s*<function=([^>\n]+)>(.*?)</function>\s*(?:</tool_call>|$)", RegexOptions.Singleline)]
        private static partial Regex Call();

        [GeneratedRegex(@"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", RegexOptions.Singleline)]
        private static partial Regex Parameter();

        public override ToolCallReply Parse(string reply) => Parse(reply, default);

        public override ToolCallReply Parse(string reply, JsonElement tools)
        {
            var types = tools.ValueKind == JsonValueKind.Array ? ToolSignature.Of(tools) : [];
            return Delimited(reply, Call(), m =>
            {
                string name = m.Groups[1].Value.Trim();
                var parameters = types.FirstOrDefault(t => t.Name == name)?.Parameters;
                var arguments = new System.Text.Json.Nodes.JsonObject();
                foreach (Match p in Parameter().Matches(m.Groups[2].Value))
                    arguments[p.Groups[1].Value.Trim()] = Value(p.Groups[2].Value, TypeOf(parameters, p.Groups[1].Value.Trim()));
                return name.Length == 0 ? null : [new ChatToolCall(NewId(null), name, arguments.ToJsonString())];
            });
        }

        /// <summary>The type a parameter's schema names (its first, where it lists several); null where it names none.</summary>
        private static string? TypeOf(JsonElement? parameters, string name) =>
            parameters is { ValueKind: JsonValueKind.Object } p && p.TryGetProperty("properties", out var props) && props.ValueKind == JsonValueKind.Object
            && props.TryGetProperty(name, out var schema) && schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("type", out var type)
                ? type.ValueKind == JsonValueKind.String ? type.GetString() : type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()).FirstOrDefault(t => t != "null") : null
                : null;

        private static System.Text.Json.Nodes.JsonNode? Value(string text, string? type)
        {
            if (type == "string") return text;
            string json = type == "boolean" && text.Trim() is "True" or "False" ? text.Trim().ToLowerInvariant() : text;
            if (ParseJson(json) is not { } value) return text;
            bool fits = type switch
            {
                "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
                "number" => value.ValueKind == JsonValueKind.Number,
                "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
                "object" => value.ValueKind == JsonValueKind.Object,
                "array" => value.ValueKind == JsonValueKind.Array,
                "null" => value.ValueKind == JsonValueKind.Null,
                _ => true,
            };
            return fits ? System.Text.Json.Nodes.JsonNode.Parse(value.GetRawText()) : text;
        }

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) =>
            throw new ArgumentException("Qwen3-Coder writes a call's arguments as XML parameters, not JSON, so a reply cannot be held to their schema");
    }

    /// <summary>Hermes 2 Pro, Qwen 2.5 and Qwen 3: each call a JSON object between &lt;tool_call&gt; tags (the last may end with the reply).</summary>
    private sealed partial class Hermes : ToolCallSyntax
    {
        public override string Name => "hermes";

        public override int TextBefore(string reply) => BeforeMarker(reply, "<tool_call>");

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) => CallObject("<tool_call>\n", tools, "name", "arguments", "\n</tool_call>");

        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply) => AfterEach(reply, "<tool_call>", from =>
            PartialJson.CallObject(reply, PartialJson.SkipWhitespace(reply, from), "name", ["arguments", "parameters"]) is { } call ? [call] : []);

        [GeneratedRegex(@"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", RegexOptions.Singleline)]
        private static partial Regex Block();

        public override ToolCallReply Parse(string reply) =>
            Delimited(reply, Block(), m => ParseJson(m.Groups[1].Value) is { } json && Call(json, "name", ["arguments", "parameters"]) is { } call ? [call] : null);
    }

    /// <summary>Mistral: [TOOL_CALLS] and a JSON list of {"name", "arguments", "id"}; its templates want 9-character alphanumeric ids.</summary>
    private sealed class Mistral : ToolCallSyntax
    {
        private const string Marker = "[TOOL_CALLS]";

        public override string Name => "mistral";

        public override int TextBefore(string reply) => BeforeMarker(reply, Marker);

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) => CallObject(Marker + "[", tools, "name", "arguments", "]");

        /// <summary>
        /// The list's calls as they come. A streamed call's id is a fresh one in the template's shape: the model may
        /// write its own after the arguments, too late for the call's first delta.
        /// </summary>
        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply)
        {
            int at = reply.IndexOf(Marker, StringComparison.Ordinal);
            return at < 0 ? [] : PartialJson.CallList(reply, PartialJson.SkipWhitespace(reply, at + Marker.Length), "name", ["arguments", "parameters"]);
        }

        public override ToolCallReply Parse(string reply)
        {
            int at = reply.IndexOf(Marker, StringComparison.Ordinal);
            if (at < 0 || ParseJson(reply[(at + Marker.Length)..].Trim()) is not { ValueKind: JsonValueKind.Array } list) return new ToolCallReply(reply.Trim(), []);
            var calls = new List<ChatToolCall>();
            foreach (var e in list.EnumerateArray())
            {
                if (Call(e, "name", ["arguments", "parameters"]) is not { } call) return new ToolCallReply(reply.Trim(), []);
                calls.Add(call);
            }
            return new ToolCallReply(reply[..at].Trim(), calls);
        }

        private protected override string NewId(string? given) =>
            given is { Length: 9 } && given.All(char.IsAsciiLetterOrDigit) ? given : RandomAlphanumeric(9);
    }

    /// <summary>Llama 3.1-3.3: the reply is one JSON object {"name", "parameters"}, after &lt;|python_tag|&gt; or alone.</summary>
    private sealed class LlamaJson : ToolCallSyntax
    {
        private const string PythonTag = "<|python_tag|>";

        public override string Name => "llama3-json";

        /// <summary>A reply is a call only as a whole: one that begins with anything but a JSON object or the tag is text throughout.</summary>
        public override int TextBefore(string reply)
        {
            string text = reply.TrimStart();
            if (text.Length == 0 || text[0] == '{' || PythonTag.StartsWith(text[..Math.Min(text.Length, PythonTag.Length)], StringComparison.Ordinal)) return 0;
            return reply.Length;
        }

        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools) => CallObject("", tools, "name", "parameters", "");

        internal override IReadOnlyList<CallSoFar> CallsSoFar(string reply)
        {
            int at = PartialJson.SkipWhitespace(reply, 0);
            if (reply.AsSpan(at).StartsWith(PythonTag)) at = PartialJson.SkipWhitespace(reply, at + PythonTag.Length);
            return PartialJson.CallObject(reply, at, "name", ["parameters", "arguments"]) is { } call ? [call] : [];
        }

        public override ToolCallReply Parse(string reply)
        {
            string text = reply.Trim();
            if (text.StartsWith(PythonTag, StringComparison.Ordinal)) text = text[PythonTag.Length..].Trim();
            if (text.StartsWith('{') && ParseJson(text) is { } json && Call(json, "name", ["parameters", "arguments"]) is { } call) return new ToolCallReply("", [call]);
            return new ToolCallReply(reply.Trim(), []);
        }
    }
}
