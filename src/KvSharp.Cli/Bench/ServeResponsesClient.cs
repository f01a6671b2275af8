using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Streams turns of a conversation from an OpenAI Responses API (<c>POST /v1/responses</c>): each turn sends only its
/// new message, the instructions, and the id of the response it follows (previous_response_id), so the server holds
/// the history; reads the stream's events itself (output_text deltas are the tokens timed, the last event the whole
/// response with its usage and id).
/// </summary>
internal sealed class ServeResponsesClient(HttpClient http, Uri responses, bool closeConnections = false, JsonArray? tools = null)
{
    /// <summary>One turn: its measurement, and the id the next turn follows (null when it failed).</summary>
    public async Task<(ServeResponse Response, string? Id)> RespondAsync(string? instructions, string input, string? previousId, int maxTokens, CancellationToken cancellation)
    {
        var body = new JsonObject { ["input"] = input, ["max_output_tokens"] = maxTokens, ["temperature"] = 0, ["stream"] = true };
        if (instructions != null) body["instructions"] = instructions;
        if (previousId != null) body["previous_response_id"] = previousId;
        if (tools != null) body["tools"] = tools.DeepClone();
        return await ServeChatClient.StreamAsync<(ServeResponse, string?)>(http, responses, body, closeConnections, ReadStreamAsync,
            error => (ServeResponse.Failed(error), null), cancellation);
    }

    private static async Task<(ServeResponse, string?)> ReadStreamAsync(HttpResponseMessage response, long start, CancellationToken cancellation)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellation), Encoding.UTF8);
        var text = new StringBuilder();
        var gaps = new List<double>();
        double first = -1, last = -1;
        JsonNode? final = null;
        while (await reader.ReadLineAsync(cancellation) is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal)) continue;
            double now = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var e = JsonNode.Parse(line.AsSpan(5).Trim().ToString());
            if (e?["error"] is { } error) return (ServeResponse.Failed($"error event: {ServeChatClient.OneLine(error.ToJsonString())}"), null);
            switch (e?["type"]?.GetValue<string>())
            {
                case "response.output_text.delta" when e["delta"]?.GetValue<string>() is { Length: > 0 } piece:
                    if (first < 0) first = now;
                    else gaps.Add(now - last);
                    last = now;
                    text.Append(piece);
                    break;
                case "response.completed" or "response.incomplete":
                    final = e["response"];
                    break;
            }
        }
        if (final?["usage"] is not JsonObject usage) return (ServeResponse.Failed("the stream ended without response.completed"), null);
        if (first < 0) first = last = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        int cached = usage["input_tokens_details"]?["cached_tokens"]?.GetValue<int>() ?? 0;
        return (new ServeResponse(null, text.ToString(), first, last, gaps, usage["input_tokens"]!.GetValue<int>(), usage["output_tokens"]!.GetValue<int>(),
            cached, true, "usage.input_tokens_details.cached_tokens"), final["id"]?.GetValue<string>());
    }

    /// <summary>The Responses API's function tools: <see cref="ServeChatClient.WeatherTool"/> with its function's fields at the top.</summary>
    public static JsonArray Flat(JsonArray chatTools) =>
        [.. chatTools.Select(t => { var f = t!["function"]!.DeepClone().AsObject(); f["type"] = "function"; return (JsonNode)f; })];
}
