using KvSharp.Server.Chat;
using KvSharp.Server.Errors;
using KvSharp.Server.Generation;
using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace KvSharp.Server.Responses;

/// <summary>
/// OpenAI's Responses API over the chat machinery: <c>POST /v1/responses</c> answers an input (with instructions,
/// function tools, text.format) whole or as a stream of events (<see cref="ResponseEvents"/>); a stored response
/// (store, the default) can be read back (<c>GET /v1/responses/{id}</c>, and the items it was generated from at
/// <c>/input_items</c>), deleted, and continued by
/// <c>previous_response_id</c>: its conversation is rendered again with the new input after it, and where that
/// rendering starts with the earlier prompt and reply, the token ids the earlier request used and generated are
/// reused, so the conversation's KV blocks are prefix-cache hits, as a chat completion's <c>continues</c> does.
/// </summary>
internal static class ResponsesEndpoint
{
    public static void Map(IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/responses", Create);
        routes.MapGet("/v1/responses/{id}", (HttpContext context, string id) =>
            context.Response.WriteAsJsonAsync(Stored(context, id).Response, ServerJson.Default.ResponseObject, contentType: null, context.RequestAborted));
        routes.MapGet("/v1/responses/{id}/input_items", (HttpContext context, string id) =>
            context.Response.WriteAsJsonAsync(ResponseInputItems.Page(Stored(context, id).InputItems, context.Request.Query),
                ServerJson.Default.ResponseItemList, contentType: null, context.RequestAborted));
        routes.MapDelete("/v1/responses/{id}", (HttpContext context, string id) =>
        {
            var store = context.RequestServices.GetRequiredService<EngineService>().Responses;
            if (!store.Forget(id)) throw NotFound(id, "id");
            return context.Response.WriteAsJsonAsync(new ResponseDeleted(id, "response.deleted", true), ServerJson.Default.ResponseDeleted, contentType: null, context.RequestAborted);
        });
    }

    private static StoredResponse Stored(HttpContext context, string id, string param = "id") =>
        context.RequestServices.GetRequiredService<EngineService>().Responses.TryGet(id, out var stored) ? stored : throw NotFound(id, param);

    private static ApiError NotFound(string id, string param) =>
        new(404, $"No response with id '{id}' is stored here (it was not stored, was deleted, or has been evicted by newer ones)", ApiError.InvalidRequest, param, "not_found");

    /// <summary>
    /// Starts the chat call; with truncation "auto", first drops the conversation's oldest turns until its prompt and
    /// max_output_tokens fit the context (the stored conversation is then the one the model saw, so the next turn starts
    /// from it and its prefix stays cached).
    /// </summary>
    private static ChatCall StartFitting(HttpContext context, ChatCompletionRequest chat, List<ChatRequestMessage> conversation, EngineService served, string id, bool truncate)
    {
        while (true)
        {
            try
            {
                return ChatCompletionsEndpoint.Start(context, chat, served, id);
            }
            catch (ApiError e) when (truncate && e.Code == "context_length_exceeded" && ResponsesInput.DropOldestTurn(chat, conversation))
            {
            }
        }
    }

    private static async Task Create(HttpContext context)
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        var body = await JsonBody.ReadAsync(context.Request, ServerJson.Default.ResponsesRequest);
        var previous = body.PreviousResponseId is { } previousId ? Stored(context, previousId, "previous_response_id") : null;
        var (chat, conversation) = ResponsesInput.ToChat(body, previous?.Conversation);
        string id = ResponseOutput.NewResponseId(context.Request);
        bool truncate = ResponsesInput.TruncatesAuto(body);
        var tokenizer = served.Model.Tokenizer;
        var shell = new ResponseObject(id, "response", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), "in_progress", served.ModelId, [], null, null,
            body.Instructions, body.PreviousResponseId, body.MaxOutputTokens, body.Temperature, body.TopP, body.ParallelToolCalls ?? true, body.Store ?? true,
            body.Metadata ?? [], Truncation: truncate ? "auto" : "disabled");
        try
        {
            using var call = StartFitting(context, chat, conversation, served, id, truncate);
            ResponseObject? response;
            ChatReply? reply = null;
            if (body.Stream == true)
            {
                var events = new ResponseEvents(shell, tokenizer);
                await call.Run.StreamAsync(context.Response, call.Chunks(events), includeUsage: true);
                response = events.Final;
            }
            else
            {
                var result = await call.Run.CompleteAsync();
                reply = call.Reply(0, result.FinishReasons[0]);
                response = ResponseOutput.Complete(shell, reply, result.Usage, tokenizer);
            }
            // What a later response continues: this conversation, then the reply read whole (once, where not read yet).
            if (response != null && body.Store != false)
            {
                reply ??= call.Reply(0, GenerationRun.OpenAiFinishReason(call.Run.Handle.FinishReasons[0]));
                served.Responses.Remember(id, new StoredResponse(response, [.. conversation, ResponseOutput.AssistantTurn(reply)],
                    ResponseInputItems.Of(previous, body.Input)));
            }
            if (body.Stream != true) await context.Response.WriteAsJsonAsync(response!, ServerJson.Default.ResponseObject, contentType: null, context.RequestAborted);
        }
        catch (ApiError e)
        {
            throw ResponsesInput.Renamed(e);
        }
    }
}
