using System.Net;
using System.Text;
using System.Text.Json;

namespace KvSharp.Server.Tests;

/// <summary>Every kind of bad request gets its status and OpenAI's error shape with its code and the field at fault.</summary>
public class BadRequestTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Theory]
    [InlineData("{\"prompt\": \"Once\", ", "invalid_json", null)]
    [InlineData("", "invalid_json", null)]
    [InlineData("null", "invalid_json", null)]
    [InlineData("{\"prompt\": \"Once\", \"max_tokens\": \"many\"}", "invalid_type", "max_tokens")]
    [InlineData("{\"prompt\": \"Once\", \"model\": \"gpt-4\"}", "model_not_found", "model")]
    [InlineData("{\"max_tokens\": 5}", "missing_required_parameter", "prompt")]
    [InlineData("{\"prompt\": 42}", "invalid_type", "prompt")]
    [InlineData("{\"prompt\": [1, 99999]}", "invalid_value", "prompt")]
    [InlineData("{\"prompt\": \"Once\", \"max_tokens\": 0}", "invalid_value", "max_tokens")]
    [InlineData("{\"prompt\": \"Once\", \"temperature\": 2.5}", "invalid_value", "temperature")]
    [InlineData("{\"prompt\": \"Once\", \"temperature\": -1}", "invalid_value", "temperature")]
    [InlineData("{\"prompt\": \"Once\", \"top_p\": 0}", "invalid_value", "top_p")]
    [InlineData("{\"prompt\": \"Once\", \"top_k\": -1}", "invalid_value", "top_k")]
    [InlineData("{\"prompt\": \"Once\", \"n\": 0}", "invalid_value", "n")]
    [InlineData("{\"prompt\": \"Once\", \"n\": 129}", "invalid_value", "n")]
    [InlineData("{\"prompt\": \"Once\", \"n\": 65}", "invalid_value", "n")] // more than the 64 sequences the engine runs at once
    [InlineData("{\"prompt\": \"Once\", \"presence_penalty\": 2.5}", "invalid_value", "presence_penalty")]
    [InlineData("{\"prompt\": \"Once\", \"frequency_penalty\": -3}", "invalid_value", "frequency_penalty")]
    [InlineData("{\"prompt\": \"Once\", \"stop\": \"\"}", "invalid_value", "stop")]
    [InlineData("{\"prompt\": \"Once\", \"stop\": [\"a\", 3]}", "invalid_type", "stop")]
    [InlineData("{\"prompt\": \"Once\", \"stream_options\": {\"include_usage\": true}}", "invalid_value", "stream_options")]
    [InlineData("{\"prompt\": \"Once\", \"logprobs\": 21}", "invalid_value", "logprobs")]
    [InlineData("{\"prompt\": \"Once\", \"logprobs\": -1}", "invalid_value", "logprobs")]
    [InlineData("{\"prompt\": \"Once\", \"max_tokens\": 600}", "context_length_exceeded", "prompt")]
    [InlineData("{\"prompt\": \"Once\", \"logit_bias\": [[5, 1]]}", "invalid_type", "logit_bias")]
    [InlineData("{\"prompt\": \"Once\", \"logit_bias\": {\"five\": 1}}", "invalid_value", "logit_bias")]
    [InlineData("{\"prompt\": \"Once\", \"logit_bias\": {\"-5\": 1}}", "invalid_value", "logit_bias")]
    [InlineData("{\"prompt\": \"Once\", \"logit_bias\": {\"512\": 1}}", "invalid_value", "logit_bias")]
    [InlineData("{\"prompt\": \"Once\", \"logit_bias\": {\"5\": 101}}", "invalid_value", "logit_bias")]
    [InlineData("{\"prompt\": \"Once\", \"logit_bias\": {\"5\": \"ban\"}}", "invalid_type", "logit_bias")]
    [InlineData("{\"prompt\": \"Once\", \"logit_bias\": {\"5\": 1, \"05\": 2}}", "invalid_value", "logit_bias")]
    [InlineData("{\"prompt\": \"Once\", \"max_tokens\": 4, \"min_tokens\": 5}", "invalid_value", "min_tokens")]
    [InlineData("{\"prompt\": \"Once\", \"min_tokens\": -1}", "invalid_value", "min_tokens")]
    [InlineData("{\"prompt\": \"Once\", \"stop_token_ids\": [3, 512]}", "invalid_value", "stop_token_ids")]
    [InlineData("{\"prompt\": \"Once\", \"stop_token_ids\": \"3\"}", "invalid_type", "stop_token_ids")]
    [InlineData("{\"prompt\": \"Once\", \"guided_json\": 5}", "invalid_type", "guided_json")]
    [InlineData("{\"prompt\": \"Once\", \"guided_json\": \"{not json\"}", "invalid_value", "guided_json")]
    [InlineData("{\"prompt\": \"Once\", \"guided_json\": {\"type\": \"string\", \"pattern\": \"(?=a)\"}}", "unsupported_parameter", "guided_json")]
    [InlineData("{\"prompt\": \"Once\", \"guided_json\": {}, \"json_schema\": {}}", "invalid_value", "json_schema")]
    [InlineData("{\"prompt\": \"Once\", \"guided_regex\": \"(?=a)b\"}", "unsupported_parameter", "guided_regex")]
    [InlineData("{\"prompt\": \"Once\", \"guided_regex\": 5}", "invalid_type", "guided_regex")]
    [InlineData("{\"prompt\": \"Once\", \"guided_choice\": []}", "invalid_type", "guided_choice")]
    [InlineData("{\"prompt\": \"Once\", \"guided_choice\": [\"a\", 1]}", "invalid_type", "guided_choice")]
    [InlineData("{\"prompt\": \"Once\", \"guided_choice\": [\"a\"], \"guided_regex\": \"a\"}", "invalid_value", "guided_choice")]
    [InlineData("{\"prompt\": \"Once\", \"guided_grammar\": \"root ::= \\\"a\\\"\"}", "unsupported_parameter", "guided_grammar")]
    [InlineData("{\"prompt\": \"Once\", \"grammar\": \"root ::= \\\"a\\\"\"}", "unsupported_parameter", "grammar")]
    [InlineData("{\"prompt\": \"Once\", \"json_schema\": [1]}", "invalid_type", "json_schema")]
    [InlineData("{\"prompt\": \"Once\", \"use_beam_search\": true}", "unsupported_parameter", "use_beam_search")]
    [InlineData("{\"prompt\": \"Once\", \"mirostat\": 2}", "unsupported_parameter", "mirostat")]
    [InlineData("{\"prompt\": \"Once\", \"typical_p\": 0.9}", "unsupported_parameter", "typical_p")]
    [InlineData("{\"prompt\": \"Once\", \"dry_multiplier\": 0.8}", "unsupported_parameter", "dry_multiplier")]
    [InlineData("{\"prompt\": \"Once\", \"xtc_probability\": 0.5}", "unsupported_parameter", "xtc_probability")]
    [InlineData("{\"prompt\": \"Once\", \"prompt_logprobs\": 21}", "invalid_value", "prompt_logprobs")]
    [InlineData("{\"prompt\": \"Once\", \"prompt_logprobs\": -1}", "invalid_value", "prompt_logprobs")]
    [InlineData("{\"prompt\": \"Once\", \"max_tokens\": 0, \"logprobs\": 1}", "invalid_value", "max_tokens")]
    [InlineData("{\"prompt\": [\"Once\", \"Lily\"], \"continues\": \"cmpl-x\"}", "invalid_value", "continues")]
    [InlineData("{\"prompt\": [\"Once\", 5]}", "invalid_type", "prompt")]
    [InlineData("{\"prompt\": [[1, 2], [1, \"x\"]]}", "invalid_type", "prompt")]
    [InlineData("{\"prompt\": \"Once\", \"include_stop_str_in_output\": true}", "unsupported_parameter", "include_stop_str_in_output")]
    [InlineData("{\"prompt\": \"Once\", \"bad_words\": [\"ball\"]}", "unsupported_parameter", "bad_words")]
    [InlineData("{\"prompt\": \"Once\", \"allowed_token_ids\": [5, 6]}", "unsupported_parameter", "allowed_token_ids")]
    [InlineData("{\"prompt\": \"Once\", \"skip_special_tokens\": false}", "unsupported_parameter", "skip_special_tokens")]
    [InlineData("{\"prompt\": \"Once\", \"return_tokens_as_token_ids\": true}", "unsupported_parameter", "return_tokens_as_token_ids")]
    [InlineData("{\"prompt\": \"Once\", \"guided_whitespace_pattern\": \" ?\"}", "unsupported_parameter", "guided_whitespace_pattern")]
    [InlineData("{\"prompt\": \"Once\", \"tfs_z\": 0.9}", "unsupported_parameter", "tfs_z")]
    [InlineData("{\"prompt\": \"Once\", \"dynatemp_range\": 0.5}", "unsupported_parameter", "dynatemp_range")]
    [InlineData("{\"prompt\": \"Once\", \"top_n_sigma\": 1.5}", "unsupported_parameter", "top_n_sigma")]
    [InlineData("{\"prompt\": \"Once\", \"n_predict\": -2}", "invalid_value", "n_predict")]
    public async Task CompletionsRefuseWith400(string body, string code, string? param)
    {
        var (status, json) = await server.SendAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        AssertError(HttpStatusCode.BadRequest, code, param, status, json);
    }

    [Theory]
    [InlineData("{}", "missing_required_parameter", "messages")]
    [InlineData("{\"messages\": []}", "invalid_value", "messages")]
    [InlineData("{\"messages\": \"Hi\"}", "invalid_type", "messages")]
    [InlineData("{\"messages\": [{\"role\": \"wizard\", \"content\": \"Hi\"}]}", "invalid_value", "messages[0].role")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"tool\", \"content\": \"42\"}]}", "missing_required_parameter", "messages[1].tool_call_id")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"arguments\": \"{}\"}}]}]}", "missing_required_parameter", "messages[1].tool_calls[0].function.name")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\", \"tool_calls\": [{\"id\": \"c1\", \"function\": {\"name\": \"f\"}}]}]}", "invalid_value", "messages[0].tool_calls")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"tools\": \"get_weather\"}", "invalid_type", "tools")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"description\": \"no name\"}}]}", "invalid_value", "tools[0].function.name")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"tools\": [{\"type\": \"retrieval\"}]}", "invalid_value", "tools[0].type")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"tool_choice\": \"required\"}", "invalid_value", "tool_choice")]
    [InlineData("{\"messages\": [{\"content\": \"Hi\"}]}", "missing_required_parameter", "messages[0].role")]
    [InlineData("{\"messages\": [{\"role\": \"user\"}]}", "missing_required_parameter", "messages[0].content")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "invalid_type", "messages[0].content")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hi\"}, {\"type\": \"image_url\", \"image_url\": {\"url\": \"http://x/cat.png\"}}]}]}", "unsupported_parameter", "messages[0].content[1].type")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}", "invalid_type", "messages[0].content[0].text")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"n\": 0}", "invalid_value", "n")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"n\": 129}", "invalid_value", "n")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"temperature\": 3}", "invalid_value", "temperature")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_completion_tokens\": 0}", "invalid_value", "max_completion_tokens")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 600}", "context_length_exceeded", "messages")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"top_logprobs\": 3}", "invalid_value", "top_logprobs")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"logprobs\": true, \"top_logprobs\": 21}", "invalid_value", "top_logprobs")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}", "unsupported_parameter", "tools")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"w\", \"schema\": {\"type\": \"string\", \"pattern\": \"(?=a)\"}}}}", "unsupported_parameter", "response_format.json_schema.schema")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"w\"}}}", "missing_required_parameter", "response_format.json_schema.schema")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"model\": \"gpt-4o\"}", "model_not_found", "model")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"stop\": [\"\"]}", "invalid_value", "stop")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"stream_options\": {\"include_usage\": true}}", "invalid_value", "stream_options")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"logit_bias\": {\"99999\": -100}}", "invalid_value", "logit_bias")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"modalities\": \"text\"}", "invalid_type", "modalities")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"guided_json\": {\"type\": \"object\"}, \"response_format\": {\"type\": \"json_object\"}}", "invalid_value", "guided_json")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 2, \"min_tokens\": 3}", "invalid_value", "min_tokens")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"add_generation_prompt\": false}", "unsupported_parameter", "add_generation_prompt")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"continue_final_message\": true}", "unsupported_parameter", "continue_final_message")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"echo\": true}", "unsupported_parameter", "echo")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"chat_template\": \"{{ messages }}\"}", "unsupported_parameter", "chat_template")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"documents\": [{\"title\": \"a\", \"text\": \"b\"}]}", "unsupported_parameter", "documents")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"structural_tag\": \"{}\"}", "unsupported_parameter", "structural_tag")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"verbosity\": \"low\"}", "unsupported_parameter", "verbosity")]
    public async Task ChatCompletionsRefuseWith400(string body, string code, string param)
    {
        foreach (bool stream in new[] { false, true })
        {
            // Streamed or not, a refused request gets a plain 400 before any event.
            if (stream && param == "stream_options") continue; // allowed when streaming
            var sent = System.Text.Json.Nodes.JsonNode.Parse(body)!.AsObject();
            if (stream) sent["stream"] = true;
            var (status, json) = await server.SendAsync("/v1/chat/completions", new StringContent(sent.ToJsonString(), Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
            AssertError(HttpStatusCode.BadRequest, code, param, status, json);
        }
        Assert.Equal(0, server.Engine.Pool.UsedBlocks);
    }

    [Fact]
    public async Task APromptLongerThanTheContextIsRefusedStreamedOrNot()
    {
        // 600 words: far more than 512 tokens.
        string prompt = string.Join(' ', Enumerable.Repeat("dog", 600));
        foreach (bool stream in new[] { false, true })
        {
            var body = new System.Text.Json.Nodes.JsonObject { ["prompt"] = prompt, ["stream"] = stream };
            var (status, json) = await server.PostAsync("/v1/completions", body, TestContext.Current.CancellationToken);
            AssertError(HttpStatusCode.BadRequest, "context_length_exceeded", "prompt", status, json);
            Assert.Contains("512", json.GetProperty("error").GetProperty("message").GetString());
        }
        Assert.Equal(0, server.Engine.Pool.UsedBlocks);
    }

    [Theory]
    [InlineData("/tokenize", "{}", "missing_required_parameter", "content")]
    [InlineData("/tokenize", "{\"content\": 5}", "invalid_type", "content")]
    [InlineData("/apply-template", "{}", "missing_required_parameter", "messages")]
    [InlineData("/apply-template", "{\"messages\": [{\"role\": \"narrator\", \"content\": \"Hi\"}]}", "invalid_value", "messages[0].role")]
    [InlineData("/detokenize", "{}", "missing_required_parameter", "tokens")]
    [InlineData("/detokenize", "{\"tokens\": [1, -4]}", "invalid_value", "tokens")]
    [InlineData("/detokenize", "{\"tokens\": \"1 2\"}", "invalid_type", "tokens")]
    public async Task HelperEndpointsRefuseWith400(string path, string body, string code, string param)
    {
        var (status, json) = await server.SendAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        AssertError(HttpStatusCode.BadRequest, code, param, status, json);
    }

    [Theory]
    [InlineData("/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": \"many\"}", "max_tokens", "'max_tokens' must be an integer no larger than 2147483647")]
    [InlineData("/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 99999999999999}", "max_tokens", "'max_tokens' must be an integer no larger than 2147483647")]
    [InlineData("/v1/completions", "{\"prompt\": \"Once\", \"temperature\": \"hot\"}", "temperature", "'temperature' must be a number")]
    [InlineData("/v1/completions", "{\"prompt\": \"Once\", \"stream\": \"yes\"}", "stream", "'stream' must be true or false")]
    [InlineData("/v1/chat/completions", "{\"messages\": \"Hi\"}", "messages", "'messages' must be an array")]
    [InlineData("/tokenize", "{\"content\": 5}", "content", "'content' must be a string")]
    [InlineData("/detokenize", "{\"tokens\": \"a\"}", "tokens", "'tokens' must be an array")]
    public async Task AFieldOfTheWrongTypeIsSaidInJsonTermsWithoutDotNetTypeNames(string path, string body, string param, string message)
    {
        var (status, json) = await server.SendAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        AssertError(HttpStatusCode.BadRequest, "invalid_type", param, status, json);
        string said = json.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Equal(message, said);
    }

    [Theory]
    [InlineData("GET", "/v1/nope", HttpStatusCode.NotFound, "not_found", "Invalid URL (GET /v1/nope): no such endpoint")]
    [InlineData("GET", "/v1/completions", HttpStatusCode.MethodNotAllowed, "method_not_allowed", "Method not allowed (GET /v1/completions): see the Allow header")]
    public async Task UnknownPathsAndMethodsGetOpenAisErrorShape(string method, string path, HttpStatusCode expected, string code, string message)
    {
        using var response = await server.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path), TestContext.Current.CancellationToken);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        AssertError(expected, code, null, response.StatusCode, json.RootElement);
        Assert.Equal(message, json.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    internal static void AssertError(HttpStatusCode expectedStatus, string code, string? param, HttpStatusCode status, JsonElement json)
    {
        Assert.True(status == expectedStatus, $"{status}: {json}");
        var error = json.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("type").GetString()));
    }
}
