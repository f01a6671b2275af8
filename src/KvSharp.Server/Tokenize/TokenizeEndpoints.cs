using System.Text;
using KvSharp.Server.Errors;
using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace KvSharp.Server.Tokenize;

/// <summary>llama-server's <c>POST /tokenize</c> and <c>POST /detokenize</c>, in its shapes, with the served model's tokenizer.</summary>
internal static class TokenizeEndpoints
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void Map(IEndpointRouteBuilder routes)
    {
        routes.MapPost("/tokenize", Tokenize);
        routes.MapPost("/detokenize", Detokenize);
    }

    private static async Task Tokenize(HttpContext context)
    {
        var tokenizer = context.RequestServices.GetRequiredService<EngineService>().Model.Tokenizer;
        var body = await JsonBody.ReadAsync(context.Request, ServerJson.Default.TokenizeRequest);
        if (body.Content == null) throw ApiError.Missing("content");
        int[] ids = tokenizer.Encode(body.Content, body.AddSpecial == true, body.ParseSpecial != false);
        if (body.WithPieces != true)
        {
            await context.Response.WriteAsJsonAsync(new TokenizeResponse(ids), ServerJson.Default.TokenizeResponse, contentType: null, context.RequestAborted);
            return;
        }
        var pieces = new TokenPiece[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            byte[] bytes = tokenizer.TokenPiece(ids[i], renderSpecial: true).ToArray();
            pieces[i] = new TokenPiece(ids[i], Utf8OrBytes(bytes));
        }
        await context.Response.WriteAsJsonAsync(new TokenizeWithPiecesResponse(pieces), ServerJson.Default.TokenizeWithPiecesResponse, contentType: null, context.RequestAborted);
    }

    private static async Task Detokenize(HttpContext context)
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        var body = await JsonBody.ReadAsync(context.Request, ServerJson.Default.DetokenizeRequest);
        if (body.Tokens == null) throw ApiError.Missing("tokens");
        int vocab = served.Model.Config.VocabSize;
        foreach (int id in body.Tokens)
            if ((uint)id >= (uint)vocab) throw ApiError.InvalidValue("tokens", $"token id {id} is outside the vocabulary [0, {vocab})");
        // Special tokens show as their text ("<s>"), as llama-server renders them.
        string content = served.Model.Tokenizer.Decode(body.Tokens, renderSpecial: true);
        await context.Response.WriteAsJsonAsync(new DetokenizeResponse(content), ServerJson.Default.DetokenizeResponse, contentType: null, context.RequestAborted);
    }

    /// <summary>A piece that is whole UTF-8 characters as a string; a part of a character as its bytes.</summary>
    private static object Utf8OrBytes(byte[] bytes)
    {
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return Array.ConvertAll(bytes, b => (int)b); }
    }
}
