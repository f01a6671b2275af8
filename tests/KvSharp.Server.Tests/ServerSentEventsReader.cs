using System.Text.Json;

namespace KvSharp.Server.Tests;

/// <summary>Reads an OpenAI-style event stream: <c>data: JSON</c> lines, blank lines between, <c>data: [DONE]</c> last.</summary>
public static class ServerSentEventsReader
{
    public static async Task<List<JsonElement>> ReadAllAsync(HttpResponseMessage response, CancellationToken cancellation)
    {
        using var stream = await response.Content.ReadAsStreamAsync(cancellation);
        using var reader = new StreamReader(stream);
        var events = new List<JsonElement>();
        bool done = false;
        while (await reader.ReadLineAsync(cancellation) is { } line)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            Assert.False(done, $"an event after [DONE]: {line}");
            string data = line["data: ".Length..];
            if (data == "[DONE]") done = true;
            else events.Add(JsonDocument.Parse(data).RootElement.Clone());
        }
        Assert.True(done, "the stream ended without data: [DONE]");
        return events;
    }

    /// <summary>The first event's data, leaving the rest of the stream unread.</summary>
    public static async Task<JsonElement> ReadFirstAsync(StreamReader reader, CancellationToken cancellation)
    {
        while (await reader.ReadLineAsync(cancellation) is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) return JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
        throw new EndOfStreamException("the stream ended before its first event");
    }
}
