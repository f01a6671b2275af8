using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using KvSharp.Cli.Bench;

namespace KvSharp.Tests.Bench;

/// <summary>
/// The serve scenario's client against canned event streams in the shapes servers send (OpenAI's, llama-server's):
/// what it sends (standard fields only), what it reads back, and how it fails.
/// </summary>
public sealed class ServeChatClientTests
{
    /// <summary>Answers every request with one canned response and keeps the body it was sent.</summary>
    private sealed class CannedServer(HttpStatusCode status, string body) : HttpMessageHandler
    {
        public JsonObject? Sent { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Sent = JsonNode.Parse(await request.Content!.ReadAsStringAsync(cancellationToken))!.AsObject();
            return new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, status == HttpStatusCode.OK ? "text/event-stream" : "application/json") };
        }
    }

    private static (ServeResponse Response, JsonObject Sent) Chat(string events, HttpStatusCode status = HttpStatusCode.OK)
    {
        var server = new CannedServer(status, events);
        using var http = new HttpClient(server);
        var client = new ServeChatClient(http, ServeScenario.ChatCompletionsUri("http://127.0.0.1:8080"));
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" });
        var response = client.ChatAsync(messages, 4, 7, CancellationToken.None).GetAwaiter().GetResult();
        return (response, server.Sent!);
    }

    private static string Content(string text) => $"data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n";

    [Fact]
    public void SendsOnlyStandardFields()
    {
        var (_, sent) = Chat(Content("a") + "data: [DONE]\n\n");
        Assert.Equal(["messages", "max_tokens", "temperature", "seed", "stream", "stream_options"], sent.Select(p => p.Key));
        Assert.Equal(4, sent["max_tokens"]!.GetValue<int>());
        Assert.Equal(0, sent["temperature"]!.GetValue<int>());
        Assert.Equal(7UL, sent["seed"]!.GetValue<ulong>());
        Assert.True(sent["stream"]!.GetValue<bool>());
        Assert.True(sent["stream_options"]!["include_usage"]!.GetValue<bool>());
    }

    [Fact]
    public void ReadsOpenAiUsageWithCachedTokens()
    {
        var (r, _) = Chat(Content("Hel") + Content("lo") + Content("!") +
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n" +
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":3,\"total_tokens\":23,\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n" +
            "data: [DONE]\n\n");
        Assert.True(r.Ok, r.Error);
        Assert.Equal("Hello!", r.Text);
        Assert.Equal((20, 3, 16), (r.PromptTokens, r.CompletionTokens, r.CachedTokens));
        Assert.Equal(ServeResponse.FromUsage, r.CachedFrom);
        Assert.Equal(2, r.GapsMs.Count);
        Assert.InRange(r.FirstTokenMs, 0, r.LastTokenMs);
    }

    [Fact]
    public void FallsBackToLlamaServersTimings()
    {
        // llama-server: usage (without details) and timings on the last chunk, which still has its choice.
        var (r, _) = Chat(Content("a") + Content("b") +
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":30,\"total_tokens\":32}," +
            "\"timings\":{\"cache_n\":24,\"prompt_n\":6,\"predicted_n\":2}}\n\n" +
            "data: [DONE]\n\n");
        Assert.True(r.Ok, r.Error);
        Assert.Equal((30, 2, 24), (r.PromptTokens, r.CompletionTokens, r.CachedTokens));
        Assert.Equal(ServeResponse.FromTimings, r.CachedFrom);
    }

    [Fact]
    public void WithoutUsageCountsChunksAndLeavesCachedUnknown()
    {
        var (r, _) = Chat(": keep-alive\n\n" + Content("a") + Content("b") + Content("c") + "data: [DONE]\n\n");
        Assert.True(r.Ok, r.Error);
        Assert.Equal(3, r.CompletionTokens);
        Assert.False(r.UsageReported);
        Assert.Null(r.CachedTokens);
        Assert.Null(r.CachedFrom);
    }

    [Theory]
    [InlineData("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", "without data: [DONE]")]
    [InlineData("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n", "error event")]
    public void ABrokenStreamFails(string events, string error)
    {
        var (r, _) = Chat(events);
        Assert.False(r.Ok);
        Assert.Contains(error, r.Error);
    }

    [Fact]
    public void AnErrorStatusFailsWithItsBody()
    {
        var (r, _) = Chat("{\"error\":{\"message\":\"The server is busy\",\"code\":\"rate_limit_exceeded\"}}", HttpStatusCode.TooManyRequests);
        Assert.False(r.Ok);
        Assert.StartsWith("HTTP 429: ", r.Error);
        Assert.Contains("The server is busy", r.Error);
    }
}
