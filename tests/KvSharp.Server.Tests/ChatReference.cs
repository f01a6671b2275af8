using System.ClientModel;
using KvSharp.Engine;
using KvSharp.Templates;
using OpenAI;
using OpenAI.Chat;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Server.Tests;

/// <summary>What a chat request should produce, computed in process: the template's prompt tokens run through an InferenceSession.</summary>
public sealed record ChatReference(string Text, GenerationStats Stats, int[] PromptTokens, int[] ComputedTokens)
{
    /// <summary>
    /// Greedy generation after <paramref name="messages"/> rendered by the model's template (with its stop strings),
    /// and the tokens whose KV it computed: what the engine publishes to its prefix cache for the same request.
    /// </summary>
    public static ChatReference Greedy(LlmModel model, IReadOnlyList<TemplateMessage> messages, int maxTokens, ChatTemplate? template = null)
    {
        template ??= ChatTemplate.ForModel(model);
        var prompt = template.Render(messages, addGenerationPrompt: true, model.Tokenizer).Tokenize(model.Tokenizer);
        using var session = model.CreateSession(new SessionOptions { ContextLength = 512 });
        string text = string.Concat(session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = maxTokens, StopStrings = template.StopStrings }));
        return new ChatReference(text, session.LastStats!, prompt, session.Tokens.Take(session.Cache.Length).ToArray());
    }

    /// <summary>The official OpenAI SDK's chat client for the fixture's server.</summary>
    public static ChatClient SdkClient(ServerFixture server) =>
        new("stories260K.gguf", new ApiKeyCredential("x"), new OpenAIClientOptions { Endpoint = new Uri(server.Server.BaseAddress, "v1") });

    public static string FinishReason(FinishReason reason) => reason == Engine.FinishReason.Stop ? "stop" : "length";
}
