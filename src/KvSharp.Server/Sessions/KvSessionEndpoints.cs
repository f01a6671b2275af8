using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KvSharp.Persistence;
using KvSharp.Server.Chat;
using KvSharp.Server.Errors;
using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace KvSharp.Server.Sessions;

/// <summary>
/// Saving and restoring a conversation's KV by id, in the directory the server was given (<see cref="ServerOptions.SessionDirectory"/>):
/// <c>POST /v1/kv/sessions/{id}/save</c> with a chat body (<c>messages</c>, optional <c>cache_salt</c>) writes the
/// prefix blocks the server holds for that conversation to <c>{dir}/{id}.kvprefix</c>; <c>POST /v1/kv/sessions/{id}/restore</c>
/// (optional <c>cache_salt</c>) puts them back into the prefix cache, so the conversation's next request, here or on
/// another replica of the same model, adopts them instead of computing them. Ids are 1 to 128 letters, digits, '-'
/// or '_', so no id can name a path outside the directory.
/// </summary>
internal static partial class KvSessionEndpoints
{
    [GeneratedRegex("^[A-Za-z0-9_-]{1,128}$")]
    private static partial Regex ValidId();

    public static void Map(IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/kv/sessions/{id}/save", Save);
        routes.MapPost("/v1/kv/sessions/{id}/restore", Restore);
    }

    private static string PathOf(EngineService served, string id)
    {
        if (served.Options.SessionDirectory is not { } directory)
            throw new ApiError(404, "saving conversations is off: start the server with --session-dir DIR", ApiError.InvalidRequest, null, "sessions_disabled");
        if (!ValidId().IsMatch(id))
            throw ApiError.InvalidValue("id", $"session id '{id}' must be 1 to 128 letters, digits, '-' or '_'");
        return Path.Combine(directory, id + ".kvprefix");
    }

    private static async Task Save(HttpContext context, string id)
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        string path = PathOf(served, id);
        var body = await JsonBody.ReadAsync(context.Request, ServerJson.Default.ChatCompletionRequest);
        var tokenizer = served.Model.Tokenizer;
        var tokens = ChatPrompt.Render(served.ChatTemplate, ChatPrompt.Messages(body.Messages), addGenerationPrompt: true, tokenizer).Tokenize(tokenizer);
        using var buffer = new MemoryStream();
        int saved = served.Engine.SavePrefix(tokens, body.CacheSalt, buffer);
        // Through a temporary file and a rename: a crash never leaves half a session under its id.
        string temporary = $"{path}.tmp-{Guid.NewGuid():N}";
        try
        {
            await File.WriteAllBytesAsync(temporary, buffer.ToArray(), context.RequestAborted);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
        await Respond(context, new JsonObject { ["id"] = id, ["object"] = "kv.session", ["tokens"] = saved, ["prompt_tokens"] = tokens.Length, ["bytes"] = buffer.Length });
    }

    private static async Task Restore(HttpContext context, string id)
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        string path = PathOf(served, id);
        string? salt = null;
        if (context.Request.ContentLength is > 0 || context.Request.Headers.ContentType.Count > 0)
            salt = (await JsonBody.ReadAsync(context.Request, ServerJson.Default.ChatCompletionRequest)).CacheSalt;
        if (!File.Exists(path))
            throw new ApiError(404, $"no saved session '{id}'", ApiError.InvalidRequest, "id", "session_not_found");
        int restored;
        try
        {
            await using var file = File.OpenRead(path);
            restored = served.Engine.RestorePrefix(file, salt);
        }
        catch (Exception e) when (e is InvalidDataException or SessionFileException)
        {
            // A damaged file (SessionFileException, an IOException) and a refused block (another model, KV type or salt) alike.
            throw new ApiError(422, $"session '{id}' cannot be restored: {e.Message}", ApiError.InvalidRequest, "id", "session_unusable");
        }
        await Respond(context, new JsonObject { ["id"] = id, ["object"] = "kv.session", ["tokens"] = restored });
    }

    private static Task Respond(HttpContext context, JsonObject body)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }
}
