using System.Text.Json;
using KvSharp.Cli.Bench;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Server.Tests;

/// <summary>
/// `kvsharp bench --scenario serve` on tiny models with tiny lengths: the report's fields and what must hold whatever
/// the timings (every request completes, the second turn finds the first in the prefix cache), never the timings.
/// </summary>
public sealed class ServeBenchTests(ServerFixture server) : IClassFixture<ServerFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-serve-bench-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static BenchSettings Small(BenchSettings s) => s with
    {
        Scenario = BenchScenario.Serve, Clients = [2], Turns = 2, GenTokens = 4, PromptTokens = 3, SystemTokens = 4,
        Repetitions = 1, WarmUpSeconds = 0, Threads = 2, Json = true,
    };

    private static (JsonElement Json, string Table) Run(BenchSettings settings)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, BenchRunner.Run(settings, stdout, stderr));
        using var doc = JsonDocument.Parse(stdout.ToString());
        return (doc.RootElement.Clone(), stderr.ToString());
    }

    private static JsonElement OnlyLevel(JsonElement json, string cachedFrom = "usage.prompt_tokens_details.cached_tokens")
    {
        Assert.Equal("serve", json.GetProperty("scenario").GetString());
        var level = Assert.Single(json.GetProperty("levels").EnumerateArray().ToList());
        Assert.Equal(2, level.GetProperty("clients").GetInt32());
        Assert.Equal(4, level.GetProperty("requests_completed").GetInt32());
        Assert.Equal(0, level.GetProperty("requests_failed").GetInt32());
        Assert.Empty(level.GetProperty("errors").EnumerateArray());
        foreach (string field in new[] { "ttft_ms_p50", "ttft_ms_p99", "itl_ms_p50", "itl_ms_p99", "tokens_per_s", "seconds" })
            Assert.True(level.GetProperty(field).GetDouble() >= 0, field);
        Assert.InRange(level.GetProperty("generated_tokens").GetInt64(), 1, 2 * 2 * 4);
        Assert.True(level.GetProperty("usage_reported").GetBoolean());
        Assert.Equal(cachedFrom, level.GetProperty("cached_tokens_from").GetString());
        var turns = level.GetProperty("turns").EnumerateArray().ToList();
        Assert.Equal(2, turns.Count);
        // Each client's second turn resends its first: the prefix cache serves at least that turn's full blocks.
        Assert.True(turns[1].GetProperty("cached_tokens").GetInt32() > 0, turns[1].ToString());
        Assert.True(turns[1].GetProperty("prefix_hit_rate").GetDouble() > 0);
        Assert.True(level.GetProperty("prefix_hit_rate").GetDouble() > 0);
        return level;
    }

    [Fact]
    public void InProcessServerOnASyntheticModelReportsEveryClientCountAndTheHttpOverhead()
    {
        string model = Path.Combine(_dir, "micro.gguf");
        SyntheticModelBuilder.Write(MicroShape.Shape, GgmlType.Q8_0, model);
        var (json, table) = Run(Small(new BenchSettings { ModelPath = model }));
        OnlyLevel(json);
        Assert.Equal("kvsharp (in process)", json.GetProperty("server").GetString());
        Assert.StartsWith("http://127.0.0.1:", json.GetProperty("url").GetString());
        var overhead = json.GetProperty("http_overhead");
        Assert.Equal(overhead.GetProperty("http_completion_tokens").GetInt32(), overhead.GetProperty("in_process_completion_tokens").GetInt32());
        Assert.True(overhead.GetProperty("prompt_tokens").GetInt32() > 0);
        Assert.Contains("| clients |", table);
        Assert.Contains("| in-process engine |", table);
    }

    /// <summary>
    /// With --api responses each turn sends only its message and the previous response's id to /v1/responses: the
    /// server holds the history, and the second turn still finds the first in its prefix cache.
    /// </summary>
    [Fact]
    public void TheResponsesApiTurnsSendTheirMessageAndThePreviousResponsesId()
    {
        string model = Path.Combine(_dir, "micro-responses.gguf");
        SyntheticModelBuilder.Write(MicroShape.Shape, GgmlType.Q8_0, model);
        var (json, table) = Run(Small(new BenchSettings { ModelPath = model, Api = "responses" }));
        Assert.Equal("responses", json.GetProperty("api").GetString());
        OnlyLevel(json, cachedFrom: "usage.input_tokens_details.cached_tokens");
        Assert.Contains("previous_response_id (/v1/responses)", table);
    }

    /// <summary>
    /// With --tools every request offers a tool: on a model whose template renders tools (a scripted GGUF that says what
    /// it will do, then calls) every request completes and its text streams before the call; on one whose template
    /// shows no tool syntax the run stops with the server's reason.
    /// </summary>
    [Fact]
    public void ToolsOfferEachRequestATool()
    {
        string model = ToolCallingModel.Write(["Let me check", " the weather.", "<tool_call>", ToolCallingModel.CallText, "</tool_call>"]);
        try
        {
            var (json, _) = Run(Small(new BenchSettings { ModelPath = model, Tools = true }));
            Assert.True(json.GetProperty("tools").GetBoolean());
            OnlyLevel(json);
        }
        finally
        {
            File.Delete(model);
        }
        string plain = Path.Combine(_dir, "micro-plain.gguf");
        SyntheticModelBuilder.Write(MicroShape.Shape, GgmlType.Q8_0, plain);
        var refused = Assert.Throws<InvalidOperationException>(() => BenchRunner.Run(Small(new BenchSettings { ModelPath = plain, Tools = true }), new StringWriter(), new StringWriter()));
        Assert.Contains("every warm-up request", refused.Message);
        Assert.Contains("tool-call syntax", refused.Message);
    }

    [Fact]
    public void UrlDrivesAnExternalServer()
    {
        string url = server.Server.BaseAddress.ToString();
        var (json, table) = Run(Small(new BenchSettings { Url = url }));
        var level = OnlyLevel(json);
        Assert.Equal("external", json.GetProperty("server").GetString());
        Assert.Equal(url, json.GetProperty("url").GetString());
        // No model here: the in-process side of the overhead is not measured.
        var overhead = json.GetProperty("http_overhead");
        Assert.Equal(JsonValueKind.Null, overhead.GetProperty("in_process_decode_ms_per_token").ValueKind);
        Assert.Contains("n/a (external server)", table);
        // The requests really went to that server: it served every one of them.
        Assert.True(server.Engine.Metrics.GeneratedTokens >= level.GetProperty("generated_tokens").GetInt64());
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/chat/completions")]
    [InlineData("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/chat/completions")]
    [InlineData("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1/chat/completions")]
    public void UrlNamesTheServerOrItsV1Root(string url, string expected)
    {
        Assert.Equal(expected, ServeScenario.ChatCompletionsUri(url).ToString());
        Assert.Equal(expected.Replace("chat/completions", "responses"), ServeScenario.ResponsesUri(url).ToString());
    }

    [Fact]
    public void UrlWithAModelIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => BenchRunner.Run(Small(new BenchSettings { Url = "http://127.0.0.1:1", Synthetic = "tiny" }), TextWriter.Null, TextWriter.Null));
        Assert.Contains("--url", e.Message);
    }

    [Fact]
    public void ClientsTakeListsAndRepeats()
    {
        Assert.Equal([1, 4, 16], BenchSettings.ParseClients(["1,4", "16"])!);
        Assert.Throws<ArgumentException>(() => BenchSettings.ParseClients(["0"]));
    }
}
