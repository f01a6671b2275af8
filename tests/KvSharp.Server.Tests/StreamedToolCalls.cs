using System.Text.Json;

namespace KvSharp.Server.Tests;

/// <summary>
/// A choice's streamed tool-call deltas joined as OpenAI's clients join them, their shape checked on the way: a call's
/// first delta carries its index, id, type "function" and name; each later one only its index and a fragment of its
/// arguments.
/// </summary>
public static class StreamedToolCalls
{
    /// <summary>The calls in <paramref name="choices"/> (one choice's chunk choices, in order): id, name and joined arguments.</summary>
    public static List<(string Id, string Name, string Arguments)> Join(IEnumerable<JsonElement> choices)
    {
        var calls = new List<(string Id, string Name, string Arguments)>();
        foreach (var choice in choices)
        {
            if (!choice.GetProperty("delta").TryGetProperty("tool_calls", out var deltas)) continue;
            foreach (var delta in deltas.EnumerateArray())
            {
                int index = delta.GetProperty("index").GetInt32();
                var function = delta.GetProperty("function");
                string fragment = function.GetProperty("arguments").GetString()!;
                if (index == calls.Count)
                {
                    Assert.Equal("function", delta.GetProperty("type").GetString());
                    calls.Add((delta.GetProperty("id").GetString()!, function.GetProperty("name").GetString()!, fragment));
                    continue;
                }
                Assert.Equal(calls.Count - 1, index);
                Assert.False(delta.TryGetProperty("id", out _) || delta.TryGetProperty("type", out _) || function.TryGetProperty("name", out _),
                    $"a later delta of a call carries only its index and arguments: {delta}");
                calls[^1] = calls[^1] with { Arguments = calls[^1].Arguments + fragment };
            }
        }
        return calls;
    }

    /// <summary>The calls of a whole (not streamed) reply's message: name and arguments.</summary>
    public static List<(string Name, string Arguments)> Of(JsonElement message) =>
        [.. message.GetProperty("tool_calls").EnumerateArray().Select(c => (c.GetProperty("function").GetProperty("name").GetString()!,
            c.GetProperty("function").GetProperty("arguments").GetString()!))];

    /// <summary>
    /// <paramref name="body"/> posted to the chat completions endpoint whole, then streamed: the whole reply's first
    /// choice, and the stream's events.
    /// </summary>
    public static async Task<(JsonElement Whole, List<JsonElement> Events)> WholeThenStreamedAsync(HttpClient client, System.Text.Json.Nodes.JsonObject body, CancellationToken ct)
    {
        body["stream"] = false;
        using var whole = await client.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"), ct);
        var choice = JsonDocument.Parse(await whole.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("choices")[0].Clone();
        body["stream"] = true;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        return (choice, await ServerSentEventsReader.ReadAllAsync(response, ct));
    }
}
