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
            ["bad_words"] = new JsonArray(), ["allowed_token_ids"] = null, ["skip_special_tokens"] = true, ["return_tokens_as_token_ids"] = false,
            ["tfs_z"] = 1, ["dynatemp_range"] = 0, ["top_n_sigma"] = -1, ["user"] = "someone", ["priority"] = 0,
        };
        var (status, json) = await server.PostAsync("/v1/completions", body, TestContext.Current.CancellationToken);
        Assert.True(status == HttpStatusCode.OK, json.ToString());
        var chat = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }), ["max_tokens"] = 2,
            ["add_generation_prompt"] = true, ["continue_final_message"] = false, ["echo"] = false, ["documents"] = null, ["verbosity"] = "medium",
        };
        (status, json) = await server.PostAsync("/v1/chat/completions", chat, TestContext.Current.CancellationToken);
        Assert.True(status == HttpStatusCode.OK, json.ToString());
    }

    /// <summary>llama-server's n_predict and repeat_penalty stand for max_tokens and repetition_penalty where those are absent.</summary>
    [Fact]
    public async Task LlamaServersNamesForMaxTokensAndRepetitionPenaltyAreTaken()
    {
        var ct = TestContext.Current.CancellationToken;
        async Task<System.Text.Json.JsonElement> Complete(JsonObject extra)
        {
            var body = new JsonObject { ["prompt"] = Prompt, ["temperature"] = 0 };
            foreach (var (k, v) in extra) body[k] = v?.DeepClone();
            return await server.CompleteAsync(body, ct);
        }
        var named = await Complete(new JsonObject { ["max_tokens"] = 60, ["repetition_penalty"] = 2.0 });
        var aliased = await Complete(new JsonObject { ["n_predict"] = 60, ["repeat_penalty"] = 2.0 });
        Assert.Equal(ServerFixture.Text(named), ServerFixture.Text(aliased));
        Assert.Equal(named.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), aliased.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.NotEqual(ServerFixture.Text(await Complete(new JsonObject { ["max_tokens"] = 60 })), ServerFixture.Text(aliased));
        // max_tokens wins where both are given; n_predict -1 goes on to the end of the context (or the model's end).
        Assert.Equal(3, (await Complete(new JsonObject { ["max_tokens"] = 3, ["n_predict"] = 20 })).GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var unbounded = await Complete(new JsonObject { ["n_predict"] = -1, ["ignore_eos"] = true });
        Assert.True(unbounded.GetProperty("usage").GetProperty("completion_tokens").GetInt32() > 16, unbounded.GetProperty("usage").ToString());

        // The penalties' window (llama-server's penalty_last_n, or repeat_last_n): 0 counts nothing, so a penalty does
        // nothing; 64 is the default; -1, the whole context, is not.
        string plain = ServerFixture.Text(await Complete(new JsonObject { ["max_tokens"] = 60 }));
        Assert.Equal(plain, ServerFixture.Text(await Complete(new JsonObject { ["max_tokens"] = 60, ["repetition_penalty"] = 2.0, ["penalty_last_n"] = 0 })));
        Assert.Equal(plain, ServerFixture.Text(await Complete(new JsonObject { ["max_tokens"] = 60, ["repeat_penalty"] = 2.0, ["repeat_last_n"] = 0 })));
        Assert.Equal(ServerFixture.Text(named), ServerFixture.Text(await Complete(new JsonObject { ["max_tokens"] = 60, ["repetition_penalty"] = 2.0, ["penalty_last_n"] = 64 })));
        var (status, error) = await server.PostAsync("/v1/completions", new JsonObject { ["prompt"] = Prompt, ["repeat_last_n"] = -2 }, ct);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("repeat_last_n", error.GetProperty("error").GetProperty("param").GetString());
        await server.WaitForNoBlocksAsync();
    }
}
