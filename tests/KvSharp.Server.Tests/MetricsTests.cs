using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>GET /metrics: the engine's series in Prometheus text, through OpenTelemetry's exporter.</summary>
public class MetricsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task MetricsHaveTheEnginesSeries()
    {
        var ct = TestContext.Current.CancellationToken;
        await server.CompleteAsync(new JsonObject { ["prompt"] = "Once upon a time", ["max_tokens"] = 8, ["ignore_eos"] = true }, ct);
        using var response = await server.Client.GetAsync("/metrics", ct);
        response.EnsureSuccessStatusCode();
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        string text = await response.Content.ReadAsStringAsync(ct);
        foreach (string series in new[]
        {
            "kvsharp_kv_blocks_used", "kvsharp_kv_blocks_total", "kvsharp_kv_blocks_cached", "kvsharp_kv_bytes_used_bytes", "kvsharp_kv_bytes_total_bytes",
            "kvsharp_prefix_cache_queried_tokens_total", "kvsharp_prefix_cache_hit_tokens_total", "kvsharp_preemptions_total",
            "kvsharp_queue_length", "kvsharp_sequences_running", "kvsharp_tokens_generated_total", "kvsharp_tokens_computed_total",
            "kvsharp_tokens_per_second", "kvsharp_request_time_to_first_token_seconds_bucket", "kvsharp_request_inter_token_latency_seconds_bucket",
            "kvsharp_server_requests_total",
        })
            Assert.Contains("\n" + series, text);
        Assert.Contains($"kvsharp_kv_blocks_total{{", text);
    }
}
