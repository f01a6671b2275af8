using System.Net;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Server.Tests;

/// <summary>
/// vLLM's min_tokens and stop_token_ids on /v1/completions give what the library gives with MinTokens and StopTokens;
/// other servers' fields at their neutral values (as clients send them by default) are accepted, while asking for what
/// this server does not do is a 400 naming the field (<see cref="BadRequestTests"/>).
/// </summary>
public class MinAndStopTokensRequestTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Prompt = "Once upon a time";

    [Fact]
    public async Task MinTokensAndStopTokenIdsEqualTheLibrary()
    {
        var ct = TestContext.Current.CancellationToken;
        int stop = server.Reference(Prompt, new GenerationOptions { MaxTokens = 12 }).Tokens[2];
        foreach (int min in new[] { 0, 4 })
        {
            var (expected, _, stats) = server.Reference(Prompt, new GenerationOptions { MaxTokens = 12, MinTokens = min, StopTokens = [stop] });
            var json = await server.CompleteAsync(new JsonObject
            {
                ["prompt"] = Prompt, ["max_tokens"] = 12, ["temperature"] = 0, ["min_tokens"] = min, ["stop_token_ids"] = new JsonArray(stop),
            }, ct);
            Assert.Equal(expected, ServerFixture.Text(json));
            Assert.Equal(stats.FinishReason == FinishReason.Stop ? "stop" : "length", ServerFixture.Choice(json, 0).GetProperty("finish_reason").GetString());
            Assert.Equal(stats.GeneratedTokens, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task OtherServersFieldsAtTheirNeutralValuesAreAccepted()
    {
        var body = new JsonObject
        {
            ["prompt"] = Prompt, ["max_tokens"] = 3, ["temperature"] = 0,
            ["guided_json"] = null, ["use_beam_search"] = false, ["mirostat"] = 0, ["typical_p"] = 1, ["dry_multiplier"] = 0,
            ["xtc_probability"] = 0, ["prompt_logprobs"] = null, ["include_stop_str_in_output"] = false,
        };
        var (status, json) = await server.PostAsync("/v1/completions", body, TestContext.Current.CancellationToken);
        Assert.True(status == HttpStatusCode.OK, json.ToString());
    }
}
