using System.Text.Json;
using KvSharp.Server.Generation;
using KvSharp.Server.Json;

namespace KvSharp.Server.Chat;

/// <summary>Where a chat call's chunks (<see cref="ChatChunks"/>) take their final shape: what goes out for one chunk's choices and usage.</summary>
internal interface IChatChunkWriter
{
    IReadOnlyList<byte[]> Write(ChatChunkChoice[] choices, Usage? usage);

    /// <summary>What goes out as the stream begins (<see cref="IChunkFormat.Start"/>).</summary>
    IReadOnlyList<byte[]> Start() => [];

    /// <summary>The event that ends a stream that failed after it began (<see cref="IChunkFormat.Error"/>): OpenAI's error body.</summary>
    IReadOnlyList<byte[]> Error(KvSharp.Server.Errors.ApiError error) =>
        [JsonSerializer.SerializeToUtf8Bytes(KvSharp.Server.Errors.ErrorBody.From(error), ServerJson.Default.ErrorBody)];

    /// <summary>Whether the stream ends with <c>data: [DONE]</c> (chat completions do; the Responses API's does not).</summary>
    bool EndsWithDone => true;
}

/// <summary>Chat completion chunks: <c>"object": "chat.completion.chunk"</c>, all under one id and creation time.</summary>
internal sealed class ChatChunkJson(string id, long created, string model) : IChatChunkWriter
{
    public string Id => id;
    public long Created => created;

    public IReadOnlyList<byte[]> Write(ChatChunkChoice[] choices, Usage? usage) =>
        [JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunk(id, "chat.completion.chunk", created, model, choices, usage), ServerJson.Default.ChatCompletionChunk)];
}
