using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A streamed <c>POST /v1/responses</c>, read to its end: the raw text and each event's JSON, in order.</summary>
internal static class ResponseEventsReader
{
    public static async Task<(string Raw, List<JsonElement> Events)> ReadAsync(HttpClient client, JsonObject body, CancellationToken cancellation)
    {
        body["stream"] = true;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/responses") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellation);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        string raw = await response.Content.ReadAsStringAsync(cancellation);
        return (raw, [.. raw.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement.Clone())]);
    }
}
