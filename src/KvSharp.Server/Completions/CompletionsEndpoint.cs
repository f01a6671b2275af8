using System.Text.Json;
using KvSharp.Engine;
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

/// <summary>
/// <c>POST /v1/completions</c>: OpenAI's text completions over the engine, whole or streamed; a list of prompts runs
/// them all at once (choice i of prompt p is choice p x n + i). With echo each choice starts with its prompt, and with
/// echo and logprobs its logprobs start with the prompt's tokens (the first one's null), as OpenAI's legacy scoring
/// does and lm-evaluation-harness reads; vLLM's prompt_logprobs reports them in its own shape. Either computes every
/// prompt position's logits, so a scored prompt is never a prefix-cache hit.
/// </summary>
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
        bool echo = body.Echo == true;
        // The echoed prompt's logprobs, vLLM's prompt_logprobs, or a prompt echoed with nothing to generate: scored.
        int? scorePrompt = EngineRequests.PromptScoring(body, echo ? body.Logprobs ?? (body.MaxTokens == 0 ? 0 : null) : null);
        var prompts = Prompts(body, served, context.Response);
        var constraint = OtherServersFields.ConstraintOf(body);
        // Every prompt is checked before any is submitted: a bad one fails the call with nothing started.
        // An error about one prompt of a list names it: prompt[1].
        string Field(int p) => prompts.Count > 1 ? $"prompt[{p}]" : "prompt";
        var requests = prompts.Select((prompt, p) => EngineRequests.Create(body, prompt.Tokens, served, DefaultMaxTokens, body.Logprobs,
            promptField: Field(p), constraint: constraint, scorePrompt: scorePrompt)).ToArray();
        string id = $"cmpl-{Guid.NewGuid():N}";
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        int n = requests[0].SampleCount;
        var runs = new List<(GenerationRun Run, IChunkFormat Format)>(requests.Length);
        try
        {
            for (int p = 0; p < requests.Length; p++)
            {
                var run = served.Submit(requests[p], context.RequestAborted, promptField: Field(p));
                var echoed = new Echo(echo ? prompts[p].Text ?? served.Model.Tokenizer.Decode([.. prompts[p].Tokens]) : null, echo ? body.Logprobs : null, body.PromptLogprobs);
                runs.Add((run, new Chunks(id, created, served.ModelId, served.Model.Tokenizer, run.Handle, p * n, echoed)));
            }
            if (prompts is [{ Text: { } promptText }] && served.Options.ContinuationTokens > 0)
            {
                var run = runs[0].Run;
                run.Finished = () => PromptContinuation.Remember(served, id, promptText, run.Handle);
            }
            if (body.Stream == true)
            {
                await GenerationRun.StreamAllAsync(context.Response, runs, body.StreamOptions?.IncludeUsage == true);
                return;
            }
            var choices = new List<CompletionChoice>(runs.Count * n);
            Usage? usage = null;
            foreach (var (run, format) in runs)
            {
                var result = await run.CompleteAsync();
                for (int i = 0; i < n; i++) choices.Add(((Chunks)format).Choice(i, result.Texts[i], result.Logprobs?[i], result.FinishReasons[i]));
                usage = usage == null ? result.Usage : usage + result.Usage;
            }
            var response = new CompletionResponse(id, Chunks.Object, created, served.ModelId, [.. choices], usage);
            await context.Response.WriteAsJsonAsync(response, ServerJson.Default.CompletionResponse, contentType: null, context.RequestAborted);
        }
        finally
        {
            foreach (var (run, _) in runs) run.Dispose();
        }
    }

    /// <summary>
    /// The request's prompts, each as token ids with its text (null when given as ids): one, or each of a list of
    /// strings or of token-id lists. One text prompt may continue an earlier completion (<see cref="PromptContinuation"/>),
    /// and says so in a header.
    /// </summary>
    private static List<(IReadOnlyList<int> Tokens, string? Text)> Prompts(CompletionRequest body, EngineService served, HttpResponse response)
    {
        var prompt = body.Prompt;
        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() > 0 && prompt[0].ValueKind is JsonValueKind.String or JsonValueKind.Array)
        {
            if (body.Continues != null && prompt.GetArrayLength() > 1)
                throw ApiError.InvalidValue("continues", "continues takes one text prompt, not a list of prompts");
            // Each runs as its own request, so a list longer than the queue could never be taken whole.
            if (prompt.GetArrayLength() > served.MaxInFlight)
                throw ApiError.InvalidValue("prompt", $"prompt lists {prompt.GetArrayLength()} prompts, more than the {served.MaxInFlight} requests this server takes at once (kvsharp serve --max-running, --max-queue); send fewer per request");
            if (body.Continues == null)
                return [.. prompt.EnumerateArray().Select(e => Cut(body, PromptTokens(e, served.Model), e.ValueKind == JsonValueKind.String ? e.GetString() : null, served))];
        }
        var (tokens, continued) = PromptContinuation.Tokenize(body, served);
        var one = Cut(body, tokens, PromptContinuation.TextOf(prompt), served);
        PromptContinuation.Report(response, body.Continues, one.Tokens.Count < tokens.Count ? 0 : continued);
        return [one];
    }

    /// <summary>
    /// vLLM's truncate_prompt_tokens: the prompt's last tokens (<see cref="EngineRequests.Truncated"/>). A cut prompt is
    /// no longer its text: an echo shows the tokens kept, and nothing is remembered for a continuation.
    /// </summary>
    private static (IReadOnlyList<int> Tokens, string? Text) Cut(CompletionRequest body, IReadOnlyList<int> tokens, string? text, EngineService served)
    {
        var kept = EngineRequests.Truncated(body, tokens, served);
        return kept.Count < tokens.Count ? (kept, null) : (tokens, text);
    }

    private static void CheckCompletionFields(CompletionRequest body)
    {
        if (body.Logprobs is < 0 or > EngineRequests.MaxTopLogprobs)
            throw ApiError.InvalidValue("logprobs", $"logprobs must be in [0, {EngineRequests.MaxTopLogprobs}], got {body.Logprobs}");
        if (!string.IsNullOrEmpty(body.Suffix)) throw ApiError.Unsupported("suffix", "suffix (insertion) is not supported");
        if (body.BestOf is int bestOf && bestOf != 1 && bestOf != (body.N ?? 1))
            throw ApiError.Unsupported("best_of", $"best_of must equal n (or be 1), got {bestOf}");
    }

    /// <summary>
    /// One prompt as token ids: text is tokenized as llama-server does for completions (BOS added, special-token text
    /// such as "&lt;|im_start|&gt;" parsed as the token: the caller owns the whole prompt); ids are taken as given. A
    /// list holding one prompt is that prompt.
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
                return PromptTokens(prompt[0], model); // a list of one
            case JsonValueKind.Array:
                var ids = new List<int>(prompt.GetArrayLength());
                foreach (var e in prompt.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id))
                        throw ApiError.InvalidType("prompt", $"prompt must be a string, an array of token ids, or a list of those; found a {e.ValueKind} among token ids");
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

    /// <summary>
    /// What a prompt's choices start with: its text (null: no echo), its tokens' logprobs with this many alternatives
    /// (null: none), and vLLM's prompt_logprobs with this many (null: none).
    /// </summary>
    private sealed record Echo(string? Text, int? Logprobs, int? PromptLogprobs);

    /// <summary>
    /// One prompt's choices, numbered from <paramref name="firstIndex"/>, streamed as chunks or read whole, all under one
    /// id and creation time.
    /// </summary>
    private sealed class Chunks(string id, long created, string model, ITokenizer tokenizer, RequestHandle handle, int firstIndex, Echo echo) : IChunkFormat
    {
        public const string Object = "text_completion";
        // Per choice: where the next token's text starts, counted over the token texts reported so far.
        private readonly int[] _textOffsets = new int[handle.Request.SampleCount];

        /// <summary>A whole choice: its echo, then its text; the echoed prompt's logprobs, then its own.</summary>
        public CompletionChoice Choice(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs, string finishReason)
        {
            var entries = EchoedEntries();
            if (logprobs != null) entries = [.. entries ?? [], .. Generated(logprobs)];
            return new CompletionChoice(firstIndex + choice, echo.Text + text, entries == null ? null : Logprobs(choice, entries), finishReason, PromptLogprobs());
        }

        /// <summary>With echo (or prompt_logprobs): a first chunk with the prompt's text and its logprobs.</summary>
        public IReadOnlyList<byte[]> Opening(int choice) => echo.Text == null && echo.PromptLogprobs == null ? []
            : [Serialize([new CompletionChoice(firstIndex + choice, echo.Text ?? "", EchoedEntries() is { } entries ? Logprobs(choice, entries) : null, null, PromptLogprobs())], null)];

        public IReadOnlyList<byte[]> Text(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs) =>
            [Serialize([new CompletionChoice(firstIndex + choice, text, logprobs == null ? null : Logprobs(choice, Generated(logprobs)), null)], null)];

        public IReadOnlyList<byte[]> Finish(int choice, string finishReason) => [Serialize([new CompletionChoice(firstIndex + choice, "", null, finishReason)], null)];

        public IReadOnlyList<byte[]> Usage(Usage usage) => [Serialize([], usage)];

        private byte[] Serialize(CompletionChoice[] choices, Usage? usage) =>
            JsonSerializer.SerializeToUtf8Bytes(new CompletionResponse(id, Object, created, model, choices, usage), ServerJson.Default.CompletionResponse);

        private List<Dictionary<string, RankedLogprob>?>? PromptLogprobs() =>
            echo.PromptLogprobs is int top ? PromptLogprobsFormat.Of(handle, top, tokenizer) : null;

        /// <summary>The echoed prompt's tokens with their logprobs (the first one's null), or null when they are not reported.</summary>
        private List<(int Token, TokenLogprobs? Scored, int Top)>? EchoedEntries()
        {
            if (echo.Text == null || echo.Logprobs is not int top) return null;
            var prompt = handle.Request.PromptTokens;
            var scored = handle.PromptLogprobs!;
            return [.. prompt.Select((token, i) => (token, scored[i], top))];
        }

        private static List<(int Token, TokenLogprobs? Scored, int Top)> Generated(IReadOnlyList<TokenLogprobs> tokens) =>
            [.. tokens.Select(t => (t.Sampled.Token, (TokenLogprobs?)t, t.Top.Length))];

        /// <summary>Tokens in OpenAI's shape: text, log-probability, the most likely tokens' (text to log-probability), text offset; null where a token has none.</summary>
        private CompletionLogprobs Logprobs(int choice, IReadOnlyList<(int Token, TokenLogprobs? Scored, int Top)> entries)
        {
            var texts = new string[entries.Count];
            var sampled = new float?[entries.Count];
            var top = new Dictionary<string, float>?[entries.Count];
            var offsets = new int[entries.Count];
            for (int i = 0; i < entries.Count; i++)
            {
                var (token, scored, count) = entries[i];
                texts[i] = PromptLogprobsFormat.TokenText(tokenizer, token);
                sampled[i] = scored?.Sampled.Logprob;
                if (scored != null)
                {
                    // Two tokens may spell the same text; the likelier one (listed first) keeps the entry.
                    top[i] = [];
                    foreach (var alt in scored.Top.Take(count)) top[i]!.TryAdd(PromptLogprobsFormat.TokenText(tokenizer, alt.Token), alt.Logprob);
                }
                offsets[i] = _textOffsets[choice];
                _textOffsets[choice] += texts[i].Length;
            }
            return new CompletionLogprobs(texts, sampled, top, offsets);
        }
    }
}
