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
        int? scorePrompt = EngineRequests.PromptScoring(body);
        if (scorePrompt != null && body.Stream == true)
            throw ApiError.Unsupported("prompt_logprobs", "prompt_logprobs comes with a whole chat completion; set stream to false");
        using var call = Start(context, body, served, $"chatcmpl-{Guid.NewGuid():N}", scorePrompt);
        var json = new ChatChunkJson(call.Id, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), served.ModelId);
        var chunks = call.Chunks(json);
        await call.Run.RespondAsync(context.Response, chunks, body.Stream == true, body.StreamOptions?.IncludeUsage == true, result => WriteRepliesAsync(context, json, chunks,
            [.. result.FinishReasons.Select((finish, i) => call.Reply(i, finish))],
            result, served.ModelId, scorePrompt is int top ? PromptLogprobsFormat.Of(call.Run.Handle, top, served.Model.Tokenizer) : null));
    }

    /// <summary>
    /// Checks a chat request, renders its messages, and submits it; the call's replies are then read, whole or
    /// streamed, in whichever API's shape called it (chat completions here, the Responses API too). The engine request
    /// is kept under <paramref name="id"/> for a later request that continues it.
    /// </summary>
    internal static ChatCall Start(HttpContext context, ChatCompletionRequest body, EngineService served, string id, int? scorePrompt = null)
    {
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
        var (rendering, continued) = PromptContinuation.TokenizeChat(body.Continues, rendered, served);
        // vLLM's truncate_prompt_tokens cuts the rendered prompt's tokens from the left: the continued ones go first, and
        // a cut prompt is no longer its rendering, so nothing is remembered for a continuation.
        var prompt = EngineRequests.Truncated(body, rendering, served);
        bool cut = prompt.Count < rendering.Count;
        PromptContinuation.Report(context.Response, body.Continues, cut ? 0 : continued);
        var request = EngineRequests.Create(body, prompt, served, defaultMaxTokens: null, topLogprobs, promptField: PromptField,
            new OtherServersFields.Constraint(constraint, format, schema, pattern), scorePrompt);
        request = request with { Options = request.Options with { StopStrings = [.. request.Options.StopStrings, .. served.ChatTemplate.StopStrings] } };
        var run = served.Submit(request, context.RequestAborted, promptField: PromptField);
        if (served.Options.ContinuationTokens > 0 && !cut) run.Finished = () => PromptContinuation.Remember(served, id, rendered.Prompt, run.Handle);
        return new ChatCall(id, run, tokenizer, tools, reasoning, forced);
    }

    private static Task WriteRepliesAsync(HttpContext context, ChatChunkJson format, ChatChunks chunks, ChatReply[] replies, GenerationResult result, string model,
        List<Dictionary<string, RankedLogprob>?>? promptLogprobs)
    {
        var choices = new ChatChoice[replies.Length];
        for (int i = 0; i < choices.Length; i++)
            choices[i] = new ChatChoice(i, new ChatResponseMessage(ChatChunks.Role, replies[i].Content, replies[i].Calls(withIndex: false), replies[i].Reasoning),
                chunks.Logprobs(result.Logprobs?[i]), replies[i].FinishReason);
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
}
