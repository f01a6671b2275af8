using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A server whose template prints the variables a request may add (<see cref="HarmonyModel.VariablesTemplate"/>).</summary>
public sealed class TemplateVariablesFixture() : ScriptedModelFixture(HarmonyModel.Answer, HarmonyModel.VariablesTemplate);

/// <summary>
/// OpenAI's reasoning_effort reaches the chat template as the variable reasoning_effort (gpt-oss's template writes
/// "Reasoning: low" into its system message), and llama-server's / vLLM's chat_template_kwargs as variables by name,
/// in chat completions and /apply-template alike; a bad value, a conflict or a variable the server sets itself is
/// refused naming the field.
/// </summary>
public sealed class ChatTemplateVariablesTests(TemplateVariablesFixture server) : IClassFixture<TemplateVariablesFixture>
{
    private static JsonObject Request(string? effort = null, JsonNode? kwargs = null) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
        ["max_tokens"] = 8,
        ["reasoning_effort"] = effort,
        ["chat_template_kwargs"] = kwargs,
    };

    private async Task<(HttpStatusCode, JsonElement)> PostAsync(string path, JsonObject body)
    {
        using var response = await server.Client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement.Clone());
    }

    private async Task<string> PromptAsync(JsonObject body)
    {
        var (status, json) = await PostAsync("/apply-template", body);
        Assert.Equal(HttpStatusCode.OK, status);
        return json.GetProperty("prompt").GetString()!;
    }

    [Fact]
    public async Task ReasoningEffortAndKwargsReachTheTemplate()
    {
        Assert.StartsWith("<|start|>user", await PromptAsync(Request()));
        Assert.StartsWith("Reasoning: low\n<|start|>user", await PromptAsync(Request("low")));
        Assert.StartsWith("Reasoning: high\nThinking: False\nBudget: 64\n<|start|>user",
            await PromptAsync(Request(kwargs: JsonNode.Parse("""{"reasoning_effort": "high", "enable_thinking": false, "budget": {"tokens": 64}}"""))));
        // The same effort both ways is no conflict.
        Assert.StartsWith("Reasoning: medium\n", await PromptAsync(Request("medium", JsonNode.Parse("""{"reasoning_effort": "medium"}"""))));

        // Chat completions take them too, and the prompt they rendered is the one /apply-template showed.
        var (status, json) = await PostAsync("/v1/chat/completions", Request("low"));
        Assert.Equal(HttpStatusCode.OK, status);
        int promptTokens = json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        var (_, plain) = await PostAsync("/v1/chat/completions", Request());
        Assert.True(promptTokens > plain.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), "the effort's line made the prompt longer");
    }

    [Theory]
    [InlineData("/v1/chat/completions", "extreme", null, "reasoning_effort", "'extreme' is not one of")]
    [InlineData("/apply-template", "extreme", null, "reasoning_effort", "'extreme' is not one of")]
    [InlineData("/v1/chat/completions", "low", """{"reasoning_effort": "high"}""", "reasoning_effort", "differs from chat_template_kwargs.reasoning_effort")]
    [InlineData("/v1/chat/completions", null, """[1, 2]""", "chat_template_kwargs", "must be an object")]
    [InlineData("/apply-template", null, """{"messages": []}""", "chat_template_kwargs", "cannot set 'messages'")]
    [InlineData("/v1/chat/completions", null, """{"tools": []}""", "chat_template_kwargs", "cannot set 'tools'")]
    public async Task BadVariablesAreRefusedByName(string path, string? effort, string? kwargs, string param, string message)
    {
        var (status, json) = await PostAsync(path, Request(effort, kwargs == null ? null : JsonNode.Parse(kwargs)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = json.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Contains(message, error.GetProperty("message").GetString());
    }
}
