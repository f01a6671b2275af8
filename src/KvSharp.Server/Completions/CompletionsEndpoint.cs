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

namespace KvSharp.Server.Completions;

/// <summary><c>POST /v1/completions</c>: OpenAI's text completions over the engine, whole or streamed.</summary>
internal static class CompletionsEndpoint
{
    /// <summary>OpenAI's default when max_tokens is absent.</summary>
    public const int DefaultMaxTokens = 16;

    public static void Map(IEndpointRouteBuilder routes) => routes.MapPost("/v1/completions", Handle);

    private static async Task Handle(HttpContext context)
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        var body = await JsonBody.ReadAsync(context.Request, ServerJson.Default.CompletionRequest);
        CheckCompletionFields(body);
        EngineRequests.CheckModel(body.Model, served);
        var (prompt, continued) = PromptContinuation.Tokenize(body, served);
        PromptContinuation.Report(context.Response, body.Continues, continued);
        var request = EngineRequests.Create(body, prompt, served, DefaultMaxTokens, body.Logprobs, constraint: OtherServersFields.ConstraintOf(body));
        using var run = served.Submit(request, context.RequestAborted, promptField: "prompt");
        string id = $"cmpl-{Guid.NewGuid():N}";
        if (PromptContinuation.TextOf(body.Prompt) is { } promptText && served.Options.ContinuationTokens > 0)
            run.Finished = () => PromptContinuation.Remember(served, id, promptText, run.Handle);
        var format = new Chunks(id, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), served.ModelId, served.Model.Tokenizer, request.SampleCount);
        await run.RespondAsync(context.Response, format, body.Stream == true, body.StreamOptions?.IncludeUsage == true, result =>
        {
            var choices = new CompletionChoice[result.Texts.Length];
            for (int i = 0; i < choices.Length; i++)
                choices[i] = new CompletionChoice(i, result.Texts[i], format.Logprobs(i, result.Logprobs?[i]), result.FinishReasons[i]);
            return context.Response.WriteAsJsonAsync(format.Response(choices, result.Usage), ServerJson.Default.CompletionResponse, contentType: null, context.RequestAborted);
        });
    }

    private static void CheckCompletionFields(CompletionRequest body)
    {
        if (body.Logprobs is < 0 or > EngineRequests.MaxTopLogprobs)
            throw ApiError.InvalidValue("logprobs", $"logprobs must be in [0, {EngineRequests.MaxTopLogprobs}], got {body.Logprobs}");
        if (body.Echo == true) throw ApiError.Unsupported("echo", "echo is not supported; leave it out or set it to false");
        if (!string.IsNullOrEmpty(body.Suffix)) throw ApiError.Unsupported("suffix", "suffix (insertion) is not supported");
        if (body.BestOf is int bestOf && bestOf != 1 && bestOf != (body.N ?? 1))
            throw ApiError.Unsupported("best_of", $"best_of must equal n (or be 1), got {bestOf}");
    }

    /// <summary>
    /// The prompt as token ids: text is tokenized as llama-server does for completions (BOS added, special-token text
    /// such as "&lt;|im_start|&gt;" parsed as the token: the caller owns the whole prompt); ids are taken as given.
    /// </summary>
    internal static IReadOnlyList<int> PromptTokens(JsonElement prompt, LlmModel model)
    {
        var tokenizer = model.Tokenizer;
        switch (prompt.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                throw ApiError.Missing("prompt");
            case JsonValueKind.String:
                return NonEmpty(tokenizer.Encode(prompt.GetString()!, addSpecial: true, parseSpecial: true));
            case JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind is JsonValueKind.String or JsonValueKind.Array:
                return PromptTokens(prompt[0], model); // a batch of one
            case JsonValueKind.Array:
                var ids = new List<int>(prompt.GetArrayLength());
                foreach (var e in prompt.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id))
                        throw ApiError.InvalidType("prompt", "prompt must be a string or an array of token ids; a batch of several prompts is not supported (send one request per prompt)");
                    if ((uint)id >= (uint)model.Config.VocabSize)
                        throw ApiError.InvalidValue("prompt", $"token id {id} is outside the vocabulary [0, {model.Config.VocabSize})");
                    ids.Add(id);
                }
                return NonEmpty(ids);
            default:
                throw ApiError.InvalidType("prompt", $"prompt must be a string or an array of token ids, got a {prompt.ValueKind}");
        }
    }

    private static IReadOnlyList<int> NonEmpty(IReadOnlyList<int> ids) =>
        ids.Count > 0 ? ids : throw ApiError.InvalidValue("prompt", "the prompt is empty (and this model's tokenizer adds no BOS token)");

    /// <summary>The completion's chunks and final response, all under one id and creation time.</summary>
    private sealed class Chunks(string id, long created, string model, ITokenizer tokenizer, int choices) : IChunkFormat
    {
        private const string Object = "text_completion";
        // Per choice: where the next token's text starts, counted over the token texts reported so far.
        private readonly int[] _textOffsets = new int[choices];

        public CompletionResponse Response(CompletionChoice[] choices, Usage? usage) => new(id, Object, created, model, choices, usage);

        public IReadOnlyList<byte[]> Text(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs) =>
            [Serialize([new CompletionChoice(choice, text, Logprobs(choice, logprobs), null)], null)];

        public IReadOnlyList<byte[]> Finish(int choice, string finishReason) => [Serialize([new CompletionChoice(choice, "", null, finishReason)], null)];

        public byte[] Usage(Usage usage) => Serialize([], usage);

        private byte[] Serialize(CompletionChoice[] choices, Usage? usage) =>
            JsonSerializer.SerializeToUtf8Bytes(Response(choices, usage), ServerJson.Default.CompletionResponse);

        /// <summary>The next tokens of a choice in OpenAI's shape (null when logprobs were not asked for).</summary>
        public CompletionLogprobs? Logprobs(int choice, IReadOnlyList<TokenLogprobs>? tokens)
        {
            if (tokens == null) return null;
            var texts = new string[tokens.Count];
            var sampled = new float[tokens.Count];
            var top = new Dictionary<string, float>[tokens.Count];
            var offsets = new int[tokens.Count];
            for (int i = 0; i < tokens.Count; i++)
            {
                texts[i] = TokenText(tokens[i].Sampled.Token);
                sampled[i] = tokens[i].Sampled.Logprob;
                // Two tokens may spell the same text; the likelier one (listed first) keeps the entry.
                top[i] = [];
                foreach (var alt in tokens[i].Top) top[i].TryAdd(TokenText(alt.Token), alt.Logprob);
                offsets[i] = _textOffsets[choice];
                _textOffsets[choice] += texts[i].Length;
            }
            return new CompletionLogprobs(texts, sampled, top, offsets);
        }

        /// <summary>A token's own text; bytes of an unfinished character show as U+FFFD, special tokens as their text.</summary>
        private string TokenText(int token) => System.Text.Encoding.UTF8.GetString(tokenizer.TokenPiece(token, renderSpecial: true));
    }
}
