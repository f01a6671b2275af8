using KvSharp.Extensions.AI;
using KvSharp.Server.Tests;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// ChatOptions.Reasoning's effort reaches the chat template as reasoning_effort (OpenAI's names: what gpt-oss's template
/// writes into its system message), and AdditionalProperties["chat_template_kwargs"] as variables by name; a kwarg the
/// client sets itself, or one that is not a dictionary, is refused.
/// </summary>
public sealed class ChatClientTemplateVariablesTests
{
    [Fact]
    public async Task EffortAndKwargsReachTheTemplate()
    {
        string path = ToolCallingModel.Write(HarmonyModel.Answer, HarmonyModel.VariablesTemplate);
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            using var client = new KvSharpChatClient(model);
            var ct = TestContext.Current.CancellationToken;
            AIChatMessage[] messages = [new(ChatRole.User, "Hi")];
            async Task<long> PromptTokens(ChatOptions options) => (await client.GetResponseAsync(messages, options, ct)).Usage!.InputTokenCount!.Value;

            // What the template makes of the conversation with these variables, in tokens.
            int Expected(params (string Name, object? Value)[] variables) => client.Template.Render([KvSharp.Templates.ChatMessage.User("Hi")], true,
                model.Tokenizer, variables.ToDictionary(v => v.Name, v => v.Value)).Tokenize(model.Tokenizer).Length;
            long plain = await PromptTokens(new ChatOptions { MaxOutputTokens = 4 });
            Assert.Equal(Expected(), plain);
            Assert.Equal(Expected(("reasoning_effort", "low")), await PromptTokens(new ChatOptions { MaxOutputTokens = 4, Reasoning = new ReasoningOptions { Effort = ReasoningEffort.Low } }));
            Assert.Equal(Expected(("reasoning_effort", "xhigh")), await PromptTokens(new ChatOptions { MaxOutputTokens = 4, Reasoning = new ReasoningOptions { Effort = ReasoningEffort.ExtraHigh } }));
            Assert.True(Expected(("reasoning_effort", "xhigh")) > plain, "the effort's line is in the prompt");
            var kwargs = new ChatOptions
            {
                MaxOutputTokens = 4,
                AdditionalProperties = new() { ["chat_template_kwargs"] = new Dictionary<string, object?> { ["enable_thinking"] = false } },
            };
            Assert.Equal(Expected(("enable_thinking", false)), await PromptTokens(kwargs));

            var reserved = new ChatOptions { AdditionalProperties = new() { ["chat_template_kwargs"] = new Dictionary<string, object?> { ["messages"] = 1 } } };
            Assert.Contains("cannot set 'messages'", (await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(messages, reserved, ct))).Message);
            var notADictionary = new ChatOptions { AdditionalProperties = new() { ["chat_template_kwargs"] = "enable_thinking" } };
            Assert.Contains("must be a dictionary", (await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(messages, notADictionary, ct))).Message);
        }
        finally { File.Delete(path); }
    }
}
