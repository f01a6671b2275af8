using System.Text;
using System.Text.Json;
using KvSharp.Sampling;
using KvSharp.Server.Continuations;
using KvSharp.Server.Errors;
using KvSharp.Server.Generation;
using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
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
        int? topLogprobs = CheckChatFields(body);
        EngineRequests.CheckModel(body.Model, served);
        var tokenizer = served.Model.Tokenizer;
        var rendered = ChatPrompt.Render(served.ChatTemplate, ChatPrompt.Messages(body.Messages), addGenerationPrompt: true, tokenizer);
        body.MaxTokens ??= body.MaxCompletionTokens;
        var (prompt, continued) = PromptContinuation.TokenizeChat(body.Continues, rendered, served);
        PromptContinuation.Report(context.Response, body.Continues, continued);
        var request = EngineRequests.Create(body, prompt, served, defaultMaxTokens: null, topLogprobs, promptField: PromptField);
        request = request with { Options = request.Options with { StopStrings = [.. request.Options.StopStrings, .. served.ChatTemplate.StopStrings] } };
        using var run = served.Submit(request, context.RequestAborted, promptField: PromptField);
        string id = $"chatcmpl-{Guid.NewGuid():N}";
        if (served.Options.ContinuationTokens > 0) run.Finished = () => PromptContinuation.Remember(served, id, rendered.Prompt, run.Handle);
        var format = new Chunks(id, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), served.ModelId, tokenizer, request.SampleCount);
        await run.RespondAsync(context.Response, format, body.Stream == true, body.StreamOptions?.IncludeUsage == true, result =>
        {
            var choices = new ChatChoice[result.Texts.Length];
            for (int i = 0; i < choices.Length; i++)
                choices[i] = new ChatChoice(i, new ChatResponseMessage(Chunks.Role, result.Texts[i]), format.Logprobs(result.Logprobs?[i]), result.FinishReasons[i]);
            var response = new ChatCompletionResponse(format.Id, "chat.completion", format.Created, served.ModelId, choices, result.Usage);
            return context.Response.WriteAsJsonAsync(response, ServerJson.Default.ChatCompletionResponse, contentType: null, context.RequestAborted);
        });
    }

    /// <summary>The fields only chat has; returns the alternatives per token to report logprobs for (null: no logprobs).</summary>
    private static int? CheckChatFields(ChatCompletionRequest body)
    {
        if (body.MaxCompletionTokens is < 1)
            throw ApiError.InvalidValue("max_completion_tokens", $"max_completion_tokens must be at least 1, got {body.MaxCompletionTokens}");
        if (body.TopLogprobs is < 0 or > EngineRequests.MaxTopLogprobs)
            throw ApiError.InvalidValue("top_logprobs", $"top_logprobs must be in [0, {EngineRequests.MaxTopLogprobs}], got {body.TopLogprobs}");
        if (body.TopLogprobs != null && body.Logprobs != true)
            throw ApiError.InvalidValue("top_logprobs", "top_logprobs needs logprobs: true");
        ChatRefusedFields.Check(body);
        return body.Logprobs == true ? body.TopLogprobs ?? 0 : null;
    }

    /// <summary>The chat completion's chunks, all under one id and creation time; each choice's first chunk carries the role.</summary>
    private sealed class Chunks(string id, long created, string model, ITokenizer tokenizer, int choices) : IChunkFormat
    {
        public const string Role = "assistant";
        private const string Object = "chat.completion.chunk";
        private readonly bool[] _roleSent = new bool[choices];

        public string Id => id;
        public long Created => created;

        public byte[] Text(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs) =>
            Serialize([new ChatChunkChoice(choice, Delta(choice, text), Logprobs(logprobs), null)], null);

        /// <summary>An empty delta, unless the choice ended before any text (it still names its role once).</summary>
        public byte[] Finish(int choice, string finishReason) =>
            Serialize([new ChatChunkChoice(choice, _roleSent[choice] ? new ChatDelta(null, null) : Delta(choice, ""), null, finishReason)], null);

        public byte[] Usage(Usage usage) => Serialize([], usage);

        private ChatDelta Delta(int choice, string text)
        {
            bool first = !_roleSent[choice];
            _roleSent[choice] = true;
            return new ChatDelta(first ? Role : null, text);
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
