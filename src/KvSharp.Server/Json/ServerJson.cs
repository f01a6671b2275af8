using System.Text.Json.Serialization;
using KvSharp.Server.Chat;
using KvSharp.Server.Completions;
using KvSharp.Server.Errors;
using KvSharp.Server.Health;
using KvSharp.Server.ModelList;
using KvSharp.Server.Responses;
using KvSharp.Server.Tokenize;

namespace KvSharp.Server.Json;

/// <summary>
/// Source-generated JSON for every request and response body: snake_case names as OpenAI and llama-server spell them,
/// nulls written out (OpenAI's "logprobs": null, "finish_reason": null). An endpoint adds its DTOs here.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(CompletionResponse))]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(ChatCompletionResponse))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(ApplyTemplateRequest))]
[JsonSerializable(typeof(ApplyTemplateResponse))]
[JsonSerializable(typeof(TokenizeRequest))]
[JsonSerializable(typeof(TokenizeResponse))]
[JsonSerializable(typeof(TokenizeWithPiecesResponse))]
[JsonSerializable(typeof(DetokenizeRequest))]
[JsonSerializable(typeof(DetokenizeResponse))]
[JsonSerializable(typeof(ModelListResponse))]
[JsonSerializable(typeof(HealthStatus))]
[JsonSerializable(typeof(ResponsesRequest))]
[JsonSerializable(typeof(ResponseObject))]
[JsonSerializable(typeof(ResponseItem))]
[JsonSerializable(typeof(ResponseContent))]
[JsonSerializable(typeof(ResponseDeleted))]
[JsonSerializable(typeof(ResponseItemList))]
[JsonSerializable(typeof(System.Text.Json.Nodes.JsonArray))]
[JsonSerializable(typeof(System.Text.Json.Nodes.JsonObject))]
// The runtime types of TokenPiece.Piece.
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(int[]))]
internal sealed partial class ServerJson : JsonSerializerContext;
