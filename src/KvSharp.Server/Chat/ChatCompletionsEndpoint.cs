using System.Text;
using System.Text.Json;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Server.Continuations;
using KvSharp.Server.Errors;
using KvSharp.Server.Generation;
using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
using KvSharp.Templates;
using KvSharp.Tokenization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace KvSharp.Server.Chat;

/// <summary>
/// <c>POST /v1/chat/completions</c>: OpenAI's chat completions over the engine, whole or streamed. The messages are
/// rendered by the served chat template and tokenized so that their content is never read as special tokens; the
/// template's stop strings join the request's, and generation also stops at the model's end-of-generation tokens.
/// With tools (<see cref="ChatTools"/>), each reply is read for tool calls once it is complete; streamed, its reasoning
/// and its text up to where a call could begin go out as they come (<see cref="ToolReplyStream"/>), and so do its
/// calls where the syntax lets them (a delta with a call's index, id and name, then fragments of its arguments, as
/// OpenAI streams them); then the rest of its text and calls, and its finish reason ("tool_calls" when it called).
/// Where a reply's whole reading disagrees with a call already streamed, its choice ends with finish reason "length"
/// if max_tokens cut the call (as OpenAI's does), else with an error.
/// </summary>
internal static class ChatCompletionsEndpoint
{
    /// <summary>The field a chat request's prompt comes from: what a context-length error or a KV-budget rejection names.</summary>
    private const string PromptField = "messages";

    public static void Map(IEndpointRouteBuilder routes) => routes.MapPost("/v1/chat/completions", Handle);

    private static async Task Handle(HttpContext context)
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        var body = await JsonBody.ReadAsync(context.Request, ServerJson.Default.ChatCompletionRequest);
        var (topLogprobs, format, schema) = CheckChatFields(body);
        // guided_json / json_schema hold the reply as response_format's json_schema does, guided_regex and guided_choice
        // to a text; one constraint at a time.
        string constraint = "response_format";
        PatternPrefix? pattern = null;
        if (OtherServersFields.ConstraintOf(body) is { } guided)
        {
            if (format != ResponseFormat.Text)
                throw ApiError.InvalidValue(guided.Param, $"give one constraint: response_format or {guided.Param}, not both");
            (format, schema, pattern, constraint) = (guided.Format, guided.Schema, guided.Pattern, guided.Param);
        }
        EngineRequests.CheckModel(body.Model, served);
        var tokenizer = served.Model.Tokenizer;
        var tools = ChatTools.Of(body, served.ChatTemplate);
        if (tools != null && format != ResponseFormat.Text)
            throw ApiError.Unsupported(constraint, $"{constraint} with tools is not supported: a reply would have to be held to it and be a tool call at once");
        var variables = ChatTemplateVariables.Of(tools, body.ChatTemplateKwargs, body.ReasoningEffort);
        var rendered = ChatPrompt.Render(served.ChatTemplate, ChatPrompt.Messages(body.Messages), addGenerationPrompt: true, tokenizer, variables);
        // How the reply's thinking goes apart (null: not at all).
        var reasoning = SplittingOf(body, served.ChatTemplate, rendered.Prompt);
        // A forced call: the reply begun with the call's opening, the rest held to the tools' schemas.
        ForcedToolCall? forced = null;
        if (tools?.Forced is { } required)
        {
            (rendered, forced) = required.Begin(rendered);
            (format, schema) = (ResponseFormat.JsonSchema, forced.Constraint);
        }
        body.MaxTokens ??= body.MaxCompletionTokens;
        var (prompt, continued) = PromptContinuation.TokenizeChat(body.Continues, rendered, served);
        PromptContinuation.Report(context.Response, body.Continues, continued);
        int? scorePrompt = EngineRequests.PromptScoring(body);
        if (scorePrompt != null && body.Stream == true)
            throw ApiError.Unsupported("prompt_logprobs", "prompt_logprobs comes with a whole chat completion; set stream to false");
        var request = EngineRequests.Create(body, prompt, served, defaultMaxTokens: null, topLogprobs, promptField: PromptField,
            new OtherServersFields.Constraint(constraint, format, schema, pattern), scorePrompt);
        request = request with { Options = request.Options with { StopStrings = [.. request.Options.StopStrings, .. served.ChatTemplate.StopStrings] } };
        using var run = served.Submit(request, context.RequestAborted, promptField: PromptField);
        string id = $"chatcmpl-{Guid.NewGuid():N}";
        if (served.Options.ContinuationTokens > 0) run.Finished = () => PromptContinuation.Remember(served, id, rendered.Prompt, run.Handle);
        bool stream = body.Stream == true, includeUsage = body.StreamOptions?.IncludeUsage == true;
        // With tools each reply is read whole for its calls once it ends; a stream shows its text up to where a call
        // could begin as it comes, and the rest with the calls at its end.
        ChatReply Read(int i, string finishReason) => ChatReply.Read(tools!, tokenizer, run.Handle.OutputTokens[i], run.Handle.OutputText[i], finishReason, reasoning, forced);
        var chunks = new Chunks(id, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), served.ModelId, tokenizer, request.SampleCount, tools == null ? reasoning : null,
            tools == null ? null : new ToolReplies(tools.Syntax, reasoning, forced, tools.MaxCalls, Read));
        await run.RespondAsync(context.Response, chunks, stream, includeUsage, result => WriteRepliesAsync(context, chunks,
            [.. result.Texts.Select((text, i) => tools == null ? ChatReply.Text(text, result.FinishReasons[i], reasoning) : Read(i, result.FinishReasons[i]))],
            result, served.ModelId, scorePrompt is int top ? PromptLogprobsFormat.Of(run.Handle, top, tokenizer) : null));
    }

    /// <summary>How a reply to a request with tools streams, and how a choice's whole reply is read once it ends.</summary>
    private sealed record ToolReplies(ToolCallSyntax Syntax, ReplySplitting? Reasoning, ForcedToolCall? Forced, int MaxCalls, Func<int, string, ChatReply> Read);

    private static Task WriteRepliesAsync(HttpContext context, Chunks format, ChatReply[] replies, GenerationResult result, string model,
        List<Dictionary<string, RankedLogprob>?>? promptLogprobs)
    {
        var choices = new ChatChoice[replies.Length];
        for (int i = 0; i < choices.Length; i++)
            choices[i] = new ChatChoice(i, new ChatResponseMessage(Chunks.Role, replies[i].Content, replies[i].Calls(withIndex: false), replies[i].Reasoning),
                format.Logprobs(result.Logprobs?[i]), replies[i].FinishReason);
        var response = new ChatCompletionResponse(format.Id, "chat.completion", format.Created, model, choices, result.Usage, promptLogprobs);
        return context.Response.WriteAsJsonAsync(response, ServerJson.Default.ChatCompletionResponse, contentType: null, context.RequestAborted);
    }

    /// <summary>
    /// How a reply's thinking goes apart: as the template's model writes it (think tags, Harmony messages), unless
    /// reasoning_format is "none", which leaves think tags in the content; Harmony messages are the reply's format,
    /// not a block in it, and are read whatever it says.
    /// </summary>
    private static ReplySplitting? SplittingOf(ChatCompletionRequest body, KvSharp.Templates.ChatTemplate template, string prompt) => body.ReasoningFormat switch
    {
        null or "auto" or "deepseek" => ReplySplitting.Of(template, prompt),
        "none" => ReplySplitting.Of(template, prompt) is { IsHarmony: true } harmony ? harmony : null,
        _ => throw ApiError.InvalidValue("reasoning_format", $"reasoning_format must be \"auto\", \"deepseek\" or \"none\", got \"{body.ReasoningFormat}\""),
    };

    /// <summary>
    /// The fields only chat has; returns the alternatives per token to report logprobs for (null: no logprobs) and what
    /// response_format asks for.
    /// </summary>
    private static (int? TopLogprobs, ResponseFormat Format, JsonSchemaPrefix? Schema) CheckChatFields(ChatCompletionRequest body)
    {
        if (body.MaxCompletionTokens is < 1)
            throw ApiError.InvalidValue("max_completion_tokens", $"max_completion_tokens must be at least 1, got {body.MaxCompletionTokens}");
        if (body.TopLogprobs is < 0 or > EngineRequests.MaxTopLogprobs)
            throw ApiError.InvalidValue("top_logprobs", $"top_logprobs must be in [0, {EngineRequests.MaxTopLogprobs}], got {body.TopLogprobs}");
        if (body.TopLogprobs != null && body.Logprobs != true)
            throw ApiError.InvalidValue("top_logprobs", "top_logprobs needs logprobs: true");
        var (format, schema) = ChatRefusedFields.Check(body);
        return (body.Logprobs == true ? body.TopLogprobs ?? 0 : null, format, schema);
    }

    /// <summary>The chat completion's chunks, all under one id and creation time; each choice's first chunk carries the role.</summary>
    private sealed class Chunks(string id, long created, string model, ITokenizer tokenizer, int choices, ReplySplitting? reasoning = null,
        ToolReplies? toolReplies = null) : IChunkFormat
    {
        public const string Role = "assistant";
        private const string Object = "chat.completion.chunk";
        private readonly bool[] _roleSent = new bool[choices];
        // Per choice, where its streamed thinking ends (null: not split).
        private readonly IReplySplitter?[] _splitters = [.. Enumerable.Range(0, choices).Select(_ => reasoning?.Start())];
        // With tools, per choice, what of its reply can be shown before it ends.
        private readonly ToolReplyStream[]? _toolStreams = toolReplies is { } t
            ? [.. Enumerable.Range(0, choices).Select(_ => new ToolReplyStream(t.Syntax, t.Reasoning, t.Forced, t.MaxCalls))] : null;

        public string Id => id;
        public long Created => created;

        public string Generated(int choice, int token) => _toolStreams?[choice].Generated(tokenizer, token) ?? "";

        public IReadOnlyList<byte[]> Text(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs)
        {
            if (_toolStreams is { } toolStreams)
            {
                var stream = toolStreams[choice];
                var (shownThought, shownAnswer) = stream.Append(text);
                var calls = stream.TakeCallDeltas();
                var chunks = new List<byte[]>(1 + calls.Count);
                // Held (a call may have begun): no text to send, but the tokens' logprobs if asked for, and what of a call streams.
                if (shownThought.Length > 0 || shownAnswer.Length > 0 || logprobs is { Count: > 0 })
                    chunks.Add(Serialize([new ChatChunkChoice(choice, Delta(choice, shownAnswer, shownThought), Logprobs(logprobs), null)], null));
                chunks.AddRange(calls.Select(call => Call(choice, call)));
                return chunks;
            }
            if (_splitters[choice] is not { } splitter) return [Serialize([new ChatChunkChoice(choice, Delta(choice, text), Logprobs(logprobs), null)], null)];
            var (thought, answer) = splitter.Append(text);
            return [Serialize([new ChatChunkChoice(choice, Delta(choice, answer, thought), Logprobs(logprobs), null)], null)];
        }

        /// <summary>
        /// An empty delta (what a split reply still held back, if anything), unless the choice ended before any text (it
        /// still names its role once). With tools: the reply read whole, what of its text was not shown, its calls,
        /// and its finish ("tool_calls" when it called).
        /// </summary>
        public IReadOnlyList<byte[]> Finish(int choice, string finishReason)
        {
            if (_toolStreams != null) return FinishWithTools(choice, toolReplies!.Read(choice, finishReason));
            var (thought, answer) = _splitters[choice]?.Flush() ?? ("", "");
            var delta = !_roleSent[choice] || thought.Length > 0 || answer.Length > 0 ? Delta(choice, answer, thought) : new ChatDelta(null, null);
            return [Serialize([new ChatChunkChoice(choice, delta, null, finishReason)], null)];
        }

        private List<byte[]> FinishWithTools(int choice, ChatReply reply)
        {
            var stream = _toolStreams![choice];
            // A streamed call the whole reading does not make as it went out cannot be taken back. Cut by max_tokens, the
            // choice ends as OpenAI ends a call it cut: with what streamed of it and finish_reason "length", which says
            // the call is not whole. Otherwise (its JSON went wrong, text followed where none may) it ends with an error
            // that says so, not with text and calls that do not add up to what was sent.
            if (stream.FinishCalls(reply.ToolCalls) is not { } calls)
                return reply.FinishReason == "length" ? [Serialize([new ChatChunkChoice(choice, new ChatDelta(null, null), null, "length")], null)]
                    : [StreamedCallUnread(choice)];
            var chunks = new List<byte[]>(2 + calls.Count);
            var (thought, answer) = stream.Finish(reply.Reasoning, reply.Content ?? "");
            if (!_roleSent[choice] || thought.Length > 0 || answer.Length > 0) chunks.Add(Reply(choice, answer, null, thought));
            chunks.AddRange(calls.Select(call => Call(choice, call)));
            chunks.Add(Serialize([new ChatChunkChoice(choice, new ChatDelta(null, null), null, reply.FinishReason)], null));
            return chunks;
        }

        /// <summary>A delta with a piece of a tool call (the role too, if it is the choice's first).</summary>
        private byte[] Call(int choice, ToolCallDelta call)
        {
            bool first = !_roleSent[choice];
            _roleSent[choice] = true;
            var shaped = new ChatResponseToolCall(call.Index, call.Id, call.Id == null ? null : "function", new ChatResponseFunction(call.Name, call.Arguments));
            return Serialize([new ChatChunkChoice(choice, new ChatDelta(first ? Role : null, null, [shaped]), null, null)], null);
        }

        private static byte[] StreamedCallUnread(int choice) => JsonSerializer.SerializeToUtf8Bytes(ErrorBody.From(new ApiError(500,
                $"choice {choice}: a tool call streamed as the model wrote it, and the whole reply does not read as that call (its JSON went " +
                "wrong, or text followed where the syntax allows none); what streamed of its calls is not to be used", "server_error", null, "tool_call_unread")),
            ServerJson.Default.ErrorBody);

        public byte[] Usage(Usage usage) => Serialize([], usage);

        /// <summary>A delta with a reply's text (the role too, in a choice's first chunk).</summary>
        private byte[] Reply(int choice, string text, ChatLogprobs? logprobs, string? reasoning = null) =>
            Serialize([new ChatChunkChoice(choice, Delta(choice, text, reasoning), logprobs, null)], null);

        private ChatDelta Delta(int choice, string text, string? reasoning = null)
        {
            bool first = !_roleSent[choice];
            _roleSent[choice] = true;
            // A split reply's delta carries only what it has: its thinking, its answer, or both.
            bool split = reasoning != null;
            return new ChatDelta(first ? Role : null, split && text.Length == 0 && reasoning!.Length > 0 ? null : text,
                ReasoningContent: split && reasoning!.Length > 0 ? reasoning : null);
        }

        private byte[] Serialize(ChatChunkChoice[] chunkChoices, Usage? usage) =>
            JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunk(id, Object, created, model, chunkChoices, usage), ServerJson.Default.ChatCompletionChunk);

        /// <summary>Tokens' logprobs in OpenAI's chat shape (null when logprobs were not asked for).</summary>
        public ChatLogprobs? Logprobs(IReadOnlyList<TokenLogprobs>? tokens)
        {
            if (tokens == null) return null;
            var content = new ChatTokenLogprob[tokens.Count];
            for (int i = 0; i < content.Length; i++)
            {
                var t = tokens[i];
                var top = Array.ConvertAll(t.Top, alt => { var (text, bytes) = Token(alt.Token); return new ChatTopLogprob(text, alt.Logprob, bytes); });
                var (token, tokenBytes) = Token(t.Sampled.Token);
                content[i] = new ChatTokenLogprob(token, t.Sampled.Logprob, tokenBytes, top);
            }
            return new ChatLogprobs(content);
        }

        /// <summary>A token's text (bytes of an unfinished character show as U+FFFD) and its exact UTF-8 bytes.</summary>
        private (string Text, int[] Bytes) Token(int token)
        {
            var bytes = tokenizer.TokenPiece(token, renderSpecial: true);
            return (Encoding.UTF8.GetString(bytes), Array.ConvertAll(bytes.ToArray(), b => (int)b));
        }
    }
}
