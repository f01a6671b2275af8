#pragma warning disable OPENAI001 // the SDK's Responses client is marked experimental
using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Server.Continuations;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Responses;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Server.Tests;

/// <summary>
/// /v1/responses against a real server with the official OpenAI SDK's ResponsesClient and Microsoft.Extensions.AI's
/// IChatClient over it: the greedy reply whole and streamed (events in order, numbered), instructions, a continued
/// conversation (previous_response_id) that reuses the earlier ids and gives what those ids give cold, stored responses
/// read back and deleted, and what is refused by name.
/// </summary>
public class ResponsesApiTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Instructions = "You tell stories.";

    private ResponsesClient Sdk() => new(new ApiKeyCredential("x"), new ResponsesClientOptions { Endpoint = new Uri(server.Server.BaseAddress, "v1") });

    private async Task<(HttpStatusCode Status, JsonElement Body, string? Continued)> PostAsync(JsonObject body)
    {
        var ct = TestContext.Current.CancellationToken;
        using var response = await server.Client.PostAsync("/v1/responses", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), ct);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.Clone();
        return (response.StatusCode, json, response.Headers.TryGetValues(PromptContinuation.ContinuedHeader, out var v) ? v.Single() : null);
    }

    [Fact]
    public async Task TheSdksResponsesClientGetsTheGreedyReplyWholeAndStreamed()
    {
        var ct = TestContext.Current.CancellationToken;
        const string user = "Tell me a story about a red ball.";
        var expected = ChatReference.Greedy(server.ReferenceModel, [TemplateMessage.System(Instructions), TemplateMessage.User(user)], 20);
        var options = new CreateResponseOptions("stories260K.gguf", [ResponseItem.CreateUserMessageItem(user)])
        {
            Instructions = Instructions, Temperature = 0, MaxOutputTokenCount = 20,
        };
        ResponseResult response = await Sdk().CreateResponseAsync(options, ct);
        Assert.Equal(expected.Text, response.GetOutputText());
        Assert.StartsWith("resp_", response.Id);
        bool cut = expected.Stats.FinishReason != FinishReason.Stop;
        Assert.Equal(cut ? ResponseStatus.Incomplete : ResponseStatus.Completed, response.Status);
        Assert.Equal(expected.PromptTokens.Length, response.Usage.InputTokenCount);
        Assert.Equal(expected.Stats.GeneratedTokens, response.Usage.OutputTokenCount);
        Assert.Equal(Instructions, response.Instructions.OfType<MessageResponseItem>().Single().Content.Single().Text);

        options.StreamingEnabled = true;
        var text = new StringBuilder();
        var kinds = new List<string>();
        ResponseResult? last = null;
        await foreach (var update in await Sdk().CreateResponseStreamingAsync(options, ct))
        {
            kinds.Add(update.GetType().Name);
            if (update is StreamingResponseOutputTextDeltaUpdate delta) text.Append(delta.Delta);
            if (update is StreamingResponseCompletedUpdate completed) last = completed.Response;
            if (update is StreamingResponseIncompleteUpdate incomplete) last = incomplete.Response;
        }
        Assert.Equal(expected.Text, text.ToString());
        Assert.Equal(expected.Text, last!.GetOutputText());
        Assert.Equal(expected.Stats.GeneratedTokens, last.Usage.OutputTokenCount);
        Assert.Equal(nameof(StreamingResponseCreatedUpdate), kinds[0]);
        Assert.Equal(nameof(StreamingResponseInProgressUpdate), kinds[1]);
        Assert.Equal(cut ? nameof(StreamingResponseIncompleteUpdate) : nameof(StreamingResponseCompletedUpdate), kinds[^1]);
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task ARawStreamNumbersItsEventsAndOpensAndClosesTheMessageAroundItsDeltas()
    {
        var ct = TestContext.Current.CancellationToken;
        var body = new JsonObject { ["input"] = "Once upon a time", ["max_output_tokens"] = 6, ["temperature"] = 0 };
        var (raw, events) = await ResponseEventsReader.ReadAsync(server.Client, body, ct);
        Assert.DoesNotContain("[DONE]", raw);
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));
        string[] types = [.. events.Select(e => e.GetProperty("type").GetString()!)];
        string[] head = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"];
        string[] tail = ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete"];
        Assert.Equal(head, types[..4]);
        Assert.Equal(tail, types[^4..]);
        Assert.All(types[4..^4], t => Assert.Equal("response.output_text.delta", t));
        string streamed = string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.output_text.delta").Select(e => e.GetProperty("delta").GetString()));
        Assert.Equal(streamed, events[^4].GetProperty("text").GetString());
        var final = events[^1].GetProperty("response");
        Assert.Equal("incomplete", final.GetProperty("status").GetString());
        Assert.Equal("max_output_tokens", final.GetProperty("incomplete_details").GetProperty("reason").GetString());
        Assert.Equal(streamed, ServerFixture.OutputText(final));
        // The stored response reads back as the stream ended it.
        var (status, stored) = await server.GetAsync($"/v1/responses/{final.GetProperty("id").GetString()}", ct);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(streamed, ServerFixture.OutputText(stored));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task PreviousResponseIdContinuesTheConversationOnItsOwnIdsAndGivesWhatThoseIdsGiveCold()
    {
        var tokenizer = server.ReferenceModel.Tokenizer;
        var template = server.Server.ChatTemplate;
        const string user1 = "Tell me a story about a dog.", user2 = "What happened next?";
        var (status, first, none) = await PostAsync(new JsonObject { ["input"] = user1, ["instructions"] = Instructions, ["max_output_tokens"] = 10, ["temperature"] = 0 });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Null(none);
        Assert.Equal("incomplete", first.GetProperty("status").GetString()); // every generated id spells the reply
        string reply = ServerFixture.OutputText(first);
        TemplateMessage[] turn1 = [TemplateMessage.System(Instructions), TemplateMessage.User(user1)];
        TemplateMessage[] turn2 = [.. turn1, new("assistant", reply), TemplateMessage.User(user2)];
        var rendered1 = template.Render(turn1, addGenerationPrompt: true, tokenizer);
        var rendered2 = template.Render(turn2, addGenerationPrompt: true, tokenizer);
        int[] prompt1 = rendered1.Tokenize(tokenizer);
        using var engine = new LlmEngine(server.ReferenceModel, new EngineOptions { ContextLength = 512, BlockCount = 64 });
        var generated = engine.Submit(new EngineRequest { PromptTokens = prompt1, Options = new GenerationOptions { MaxTokens = 10, Sampling = SamplingOptions.Greedy } });
        engine.RunUntilIdle();
        int[] ids = [.. prompt1, .. generated.OutputTokens[0], .. rendered2.TokenizeFrom(tokenizer, (rendered1.Prompt + reply).Length)];

        // The next turn sends only its new input, naming the response it follows (and its instructions again).
        var (status2, second, continued) = await PostAsync(new JsonObject
        {
            ["input"] = new JsonArray(new JsonObject { ["type"] = "message", ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "input_text", ["text"] = user2 }) }),
            ["previous_response_id"] = first.GetProperty("id").GetString(), ["instructions"] = Instructions, ["max_output_tokens"] = 6, ["temperature"] = 0,
        });
        Assert.Equal(HttpStatusCode.OK, status2);
        Assert.Equal((prompt1.Length + 10).ToString(), continued);
        var usage = second.GetProperty("usage");
        Assert.Equal(ids.Length, usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(prompt1.Length + 10 - 1, usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32());
        // The same ids computed cold (another tenant's salt) give the same reply.
        var cold = new JsonObject
        {
            ["prompt"] = new JsonArray([.. ids.Select(t => (JsonNode)t)]), ["max_tokens"] = 6, ["temperature"] = 0, ["cache_salt"] = "cold-responses",
            ["stop"] = new JsonArray([.. template.StopStrings.Select(x => (JsonNode)x)]),
        };
        Assert.Equal(ServerFixture.Text(await server.CompleteAsync(cold, TestContext.Current.CancellationToken)), ServerFixture.OutputText(second));
        Assert.Equal(first.GetProperty("id").GetString(), second.GetProperty("previous_response_id").GetString());

        // Deleted, it can be neither read nor continued.
        string id = first.GetProperty("id").GetString()!;
        using (var deleted = await server.Client.DeleteAsync($"/v1/responses/{id}", TestContext.Current.CancellationToken))
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await server.GetAsync($"/v1/responses/{id}", TestContext.Current.CancellationToken)).Status);
        var (gone, error, _) = await PostAsync(new JsonObject { ["input"] = user2, ["previous_response_id"] = id });
        Assert.Equal(HttpStatusCode.NotFound, gone);
        Assert.Equal("previous_response_id", error.GetProperty("error").GetProperty("param").GetString());
        // store: false keeps nothing to continue.
        var (_, unstored, _) = await PostAsync(new JsonObject { ["input"] = user1, ["max_output_tokens"] = 2, ["store"] = false });
        Assert.Equal(HttpStatusCode.NotFound, (await server.GetAsync($"/v1/responses/{unstored.GetProperty("id").GetString()}", TestContext.Current.CancellationToken)).Status);
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task TheIChatClientOverResponsesKeepsAConversationByItsIdAndItsCache()
    {
        var ct = TestContext.Current.CancellationToken;
        using IChatClient chat = Sdk().AsIChatClient("stories260K.gguf");
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 8, Instructions = Instructions };
        var first = await chat.GetResponseAsync([new AiChatMessage(ChatRole.User, "Tell me a story about a cat.")], options, ct);
        Assert.NotNull(first.ConversationId);
        Assert.False(string.IsNullOrEmpty(first.Text));
        // The next turn names the conversation and sends only its new message; the history's tokens are cache hits.
        var next = await chat.GetResponseAsync([new AiChatMessage(ChatRole.User, "And then?")], new ChatOptions { Temperature = 0, MaxOutputTokens = 8, Instructions = Instructions, ConversationId = first.ConversationId }, ct);
        Assert.NotEqual(first.ConversationId, next.ConversationId);
        Assert.True(next.Usage!.CachedInputTokenCount >= first.Usage!.InputTokenCount + first.Usage.OutputTokenCount - 1,
            $"{next.Usage.CachedInputTokenCount} cached of {next.Usage.InputTokenCount}; the first turn held {first.Usage.InputTokenCount} + {first.Usage.OutputTokenCount}");
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task TextFormatHoldsTheReplyAsChatsResponseFormatDoes()
    {
        // A schema of one enum: whatever the model would write, the reply is one of its values, as JSON.
        var schema = JsonNode.Parse("""{"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}}, "required": ["mood"], "additionalProperties": false}""");
        var (status, body, _) = await PostAsync(new JsonObject
        {
            ["input"] = "Tell me a story.", ["max_output_tokens"] = 60, ["temperature"] = 0,
            ["text"] = new JsonObject { ["format"] = new JsonObject { ["type"] = "json_schema", ["name"] = "mood", ["schema"] = schema } },
        });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("completed", body.GetProperty("status").GetString());
        string mood = JsonDocument.Parse(ServerFixture.OutputText(body)).RootElement.GetProperty("mood").GetString()!;
        Assert.Contains(mood, new[] { "happy", "sad" });
    }

    [Theory]
    [InlineData("ab12cd34", "resp_ab12cd34_")]
    [InlineData("Not/A-Tag", "resp_")]
    [InlineData("waytoolongforatag17", "resp_")]
    public async Task ARoutersTagForThisReplicaIsCarriedInTheIdAndAnythingElseIgnored(string tag, string prefix)
    {
        var ct = TestContext.Current.CancellationToken;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/responses") { Content = new StringContent("{\"input\": \"Hi\", \"max_output_tokens\": 1}", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-kvsharp-route", tag);
        using var response = await server.Client.SendAsync(request, ct);
        string id = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("id").GetString()!;
        Assert.Matches($"^{prefix}[0-9a-f]{{32}}$", id);
    }

    [Theory]
    [InlineData("{}", "missing_required_parameter", "input")]
    [InlineData("{\"input\": 5}", "invalid_type", "input")]
    [InlineData("{\"input\": []}", "invalid_value", "input")]
    [InlineData("{\"input\": [{\"role\": \"tool\", \"content\": \"x\"}]}", "invalid_value", "input[0].role")]
    [InlineData("{\"input\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_image\", \"image_url\": \"x\"}]}]}", "unsupported_parameter", "input[0].content[0].type")]
    [InlineData("{\"input\": [{\"type\": \"item_reference\", \"id\": \"x\"}]}", "unsupported_parameter", "input[0].type")]
    [InlineData("{\"input\": [{\"type\": \"function_call_output\", \"output\": \"x\"}]}", "missing_required_parameter", "input[0].call_id")]
    [InlineData("{\"input\": \"x\", \"tools\": [{\"type\": \"web_search\"}]}", "unsupported_parameter", "tools[0].type")]
    [InlineData("{\"input\": \"x\", \"tools\": [{\"type\": \"function\"}]}", "missing_required_parameter", "tools[0].name")]
    [InlineData("{\"input\": \"x\", \"max_output_tokens\": 0}", "invalid_value", "max_output_tokens")]
    [InlineData("{\"input\": \"x\", \"max_output_tokens\": 100000}", "context_length_exceeded", "input")]
    [InlineData("{\"input\": \"x\", \"background\": true}", "unsupported_parameter", "background")]
    [InlineData("{\"input\": \"x\", \"truncation\": \"middle\"}", "invalid_value", "truncation")]
    [InlineData("{\"input\": \"x\", \"text\": {\"verbosity\": \"high\"}}", "unsupported_parameter", "text.verbosity")]
    [InlineData("{\"input\": \"x\", \"include\": [\"reasoning.encrypted_content\"]}", "unsupported_parameter", "include")]
    [InlineData("{\"input\": \"x\", \"text\": {\"format\": {\"type\": \"yaml\"}}}", "invalid_value", "text.format.type")]
    [InlineData("{\"input\": \"x\", \"text\": {\"format\": {\"type\": \"json_schema\", \"name\": \"a\", \"schema\": {\"type\": \"object\", \"not\": {}}}}}", "unsupported_parameter", "text.format.schema")]
    [InlineData("{\"input\": \"x\", \"temperature\": 3}", "invalid_value", "temperature")]
    [InlineData("{\"input\": \"x\", \"model\": \"gpt-5\"}", "model_not_found", "model")]
    public async Task WhatCannotBeDoneIsRefusedNamingTheField(string body, string code, string param)
    {
        var ct = TestContext.Current.CancellationToken;
        using var response = await server.Client.PostAsync("/v1/responses", new StringContent(body, Encoding.UTF8, "application/json"), ct);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement;
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{response.StatusCode}: {json}");
        var error = json.GetProperty("error");
        Assert.Equal((code, param), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
    }
}
