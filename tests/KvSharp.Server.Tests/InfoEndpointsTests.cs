using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>llama-server's /tokenize and /detokenize, OpenAI's /v1/models, /health.</summary>
public class InfoEndpointsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task TokenizeMatchesTheModelsTokenizerAndDetokenizeInvertsIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var tokenizer = server.ReferenceModel.Tokenizer;
        const string text = "Once upon a time, Lily";
        var (status, json) = await server.PostAsync("/tokenize", new JsonObject { ["content"] = text }, ct);
        Assert.Equal(HttpStatusCode.OK, status);
        int[] ids = json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(tokenizer.Encode(text, addSpecial: false, parseSpecial: true), ids);

        (_, json) = await server.PostAsync("/tokenize", new JsonObject { ["content"] = text, ["add_special"] = true }, ct);
        Assert.Equal(tokenizer.BosId, json.GetProperty("tokens")[0].GetInt32());

        (status, json) = await server.PostAsync("/detokenize", new JsonObject { ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) }, ct);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(text, json.GetProperty("content").GetString());
    }

    [Fact]
    public async Task TokenizeWithPiecesGivesEachTokensText()
    {
        var (_, json) = await server.PostAsync("/tokenize", new JsonObject { ["content"] = "Once upon", ["with_pieces"] = true }, TestContext.Current.CancellationToken);
        var tokens = json.GetProperty("tokens").EnumerateArray().ToArray();
        Assert.NotEmpty(tokens);
        Assert.All(tokens, t => Assert.True(t.GetProperty("id").GetInt32() >= 0));
        Assert.Equal(" Once upon", string.Concat(tokens.Select(t => t.GetProperty("piece").GetString())));
    }

    [Fact]
    public async Task ModelsListsTheOneModelAndHealthSaysOk()
    {
        var ct = TestContext.Current.CancellationToken;
        var models = JsonDocument.Parse(await server.Client.GetStringAsync("/v1/models", ct)).RootElement;
        Assert.Equal("list", models.GetProperty("object").GetString());
        var model = Assert.Single(models.GetProperty("data").EnumerateArray());
        Assert.Equal("stories260K.gguf", model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal(512, model.GetProperty("max_model_len").GetInt32());
        var health = JsonDocument.Parse(await server.Client.GetStringAsync("/health", ct)).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
    }
}
