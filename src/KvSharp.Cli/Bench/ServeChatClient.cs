using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Cli.Bench;

/// <summary>What one streamed chat completion measured, on the client's clock.</summary>
/// <param name="FirstTokenMs">From sending the request to the first chunk with content (time to first token).</param>
/// <param name="GapsMs">Between consecutive content chunks (inter-token latency; a server may put several tokens in one chunk).</param>
/// <param name="LastTokenMs">From sending the request to the last chunk with content.</param>
/// <param name="CachedTokens">
/// usage.prompt_tokens_details.cached_tokens, else llama-server's timings.cache_n (prompt tokens it reused from the
/// slot's cache); null when the server reports neither.
/// </param>
/// <param name="CachedFrom">Which of the two <paramref name="CachedTokens"/> came from.</param>
internal sealed record ServeResponse(
    string? Error, string Text, double FirstTokenMs, double LastTokenMs, List<double> GapsMs,
    int PromptTokens, int CompletionTokens, int? CachedTokens, bool UsageReported, string? CachedFrom = null)
{
    public const string FromUsage = "usage.prompt_tokens_details.cached_tokens", FromTimings = "timings.cache_n";

    public bool Ok => Error == null;

    public static ServeResponse Failed(string error) => new(error, "", 0, 0, [], 0, 0, null, false);

    /// <summary>Mean time per token after the first: the decode time of one stream as its client sees it.</summary>
    public double? DecodeMsPerToken => CompletionTokens > 1 ? (LastTokenMs - FirstTokenMs) / (CompletionTokens - 1) : null;
}

/// <summary>
/// Streams chat completions from an OpenAI-compatible server with only the standard request fields (messages,
/// max_tokens, temperature, seed, stream, stream_options.include_usage, and <paramref name="tools"/> where given), so
/// kvsharp and llama-server get exactly the same load; reads the <c>data:</c> events of the stream itself (no SDK, so
/// nothing buffers or reorders chunks).
/// </summary>
internal sealed class ServeChatClient(HttpClient http, Uri chatCompletions, bool closeConnections = false, JsonArray? tools = null)
{
    /// <summary>The one tool <c>kvsharp bench --scenario serve --tools</c> offers.</summary>
    public static JsonArray WeatherTool() =>
    [
        new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = "get_weather",
                ["description"] = "The weather in a city",
                ["parameters"] = new JsonObject
                {
                    ["type"] = "object",
                    ["properties"] = new JsonObject { ["city"] = new JsonObject { ["type"] = "string" } },
                    ["required"] = new JsonArray("city"),
                },
            },
        },
    ];

    public async Task<ServeResponse> ChatAsync(JsonArray messages, int maxTokens, ulong seed, CancellationToken cancellation)
    {
        var body = new JsonObject
        {
            ["messages"] = messages.DeepClone(),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0,
            ["seed"] = seed,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        };
        if (tools != null) body["tools"] = tools.DeepClone();
        return await StreamAsync(http, chatCompletions, body, closeConnections, ReadStreamAsync, ServeResponse.Failed, cancellation);
    }

    /// <summary>
    /// Posts <paramref name="body"/> to <paramref name="uri"/> for a stream of events and reads it with
    /// <paramref name="read"/> (given when the request was sent, for the client's clock); an error status, or a
    /// connection or stream that fails, is <paramref name="failed"/>'s result, saying what went wrong.
    /// </summary>
    internal static async Task<T> StreamAsync<T>(HttpClient http, Uri uri, JsonObject body, bool closeConnections,
        Func<HttpResponseMessage, long, CancellationToken, Task<T>> read, Func<string, T> failed, CancellationToken cancellation)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (closeConnections) request.Headers.ConnectionClose = true;
        long start = Stopwatch.GetTimestamp();
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellation);
            if (!response.IsSuccessStatusCode)
                return failed($"HTTP {(int)response.StatusCode}: {OneLine(await response.Content.ReadAsStringAsync(cancellation))}");
            return await read(response, start, cancellation);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException || (e is TaskCanceledException && !cancellation.IsCancellationRequested))
        {
            string inner = e.InnerException is { } cause ? $" ({cause.GetType().Name}: {OneLine(cause.Message)})" : "";
            return failed($"{e.GetType().Name}: {OneLine(e.Message)}{inner}");
        }
    }

    private static async Task<ServeResponse> ReadStreamAsync(HttpResponseMessage response, long start, CancellationToken cancellation)
    {
        using var stream = await response.Content.ReadAsStreamAsync(cancellation);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var text = new StringBuilder();
        var gaps = new List<double>();
        double first = -1, last = -1;
        int prompt = 0, completion = 0, chunks = 0;
        int? cached = null, timingsCached = null;
        bool usageSeen = false, done = false;
        while (!done && await reader.ReadLineAsync(cancellation) is { } line)
        {
            // Event-stream fields other than data (comments, "event:", "id:") carry nothing here.
            if (!line.StartsWith("data:", StringComparison.Ordinal)) continue;
            string data = line.AsSpan(5).Trim().ToString();
            if (data == "[DONE]")
            {
                done = true;
                continue;
            }
            double now = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var chunk = JsonNode.Parse(data);
            if (chunk?["error"] is { } error) return ServeResponse.Failed($"error event: {OneLine(error.ToJsonString())}");
            if (chunk?["choices"] is JsonArray { Count: > 0 } choices && choices[0]?["delta"]?["content"] is JsonValue content
                && content.TryGetValue(out string? piece) && piece.Length > 0)
            {
                if (first < 0) first = now;
                else gaps.Add(now - last);
                last = now;
                chunks++;
                text.Append(piece);
            }
            if (chunk?["usage"] is JsonObject usage)
            {
                usageSeen = true;
                prompt = usage["prompt_tokens"]?.GetValue<int>() ?? 0;
                completion = usage["completion_tokens"]?.GetValue<int>() ?? 0;
                cached = usage["prompt_tokens_details"]?["cached_tokens"] is JsonValue c && c.TryGetValue(out int n) ? n : cached;
            }
            if (chunk?["timings"]?["cache_n"] is JsonValue t && t.TryGetValue(out int reused)) timingsCached = reused;
        }
        if (!done) return ServeResponse.Failed("the stream ended without data: [DONE]");
        if (first < 0) first = last = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        // Without usage the chunks are the best count of generated tokens there is.
        string? cachedFrom = cached != null ? ServeResponse.FromUsage : timingsCached != null ? ServeResponse.FromTimings : null;
        return new ServeResponse(null, text.ToString(), first, last, gaps, prompt, usageSeen ? completion : chunks, cached ?? timingsCached, usageSeen, cachedFrom);
    }

    internal static string OneLine(string s)
    {
        s = s.ReplaceLineEndings(" ").Trim();
        return s.Length <= 300 ? s : s[..300] + "...";
    }
}
