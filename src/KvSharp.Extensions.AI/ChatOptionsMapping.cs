using KvSharp.Engine;
using KvSharp.Templates;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using ChatMessage = KvSharp.Templates.ChatMessage;
using FinishReason = KvSharp.Engine.FinishReason;

namespace KvSharp.Extensions.AI;

/// <summary>Microsoft.Extensions.AI's requests and results in KvSharp's terms, and back.</summary>
internal static class ChatOptionsMapping
{
    /// <summary>What to generate: the client's defaults, less what <paramref name="chat"/> sets; the template's stop strings always apply.</summary>
    public static GenerationOptions ToGeneration(ChatOptions? chat, KvSharpChatClientOptions defaults, ChatTemplate template)
    {
        var sampling = defaults.DefaultSampling;
        if (chat == null)
            return new GenerationOptions { MaxTokens = defaults.DefaultMaxOutputTokens, Sampling = sampling, StopStrings = template.StopStrings };
        if (chat.MaxOutputTokens is < 0)
            throw new ArgumentOutOfRangeException(nameof(chat), chat.MaxOutputTokens, "ChatOptions.MaxOutputTokens must be >= 0");
        sampling = sampling with
        {
            Temperature = chat.Temperature ?? sampling.Temperature,
            TopP = chat.TopP ?? sampling.TopP,
            TopK = chat.TopK ?? sampling.TopK,
            Seed = chat.Seed is long seed ? unchecked((ulong)seed) : sampling.Seed,
            FrequencyPenalty = chat.FrequencyPenalty ?? sampling.FrequencyPenalty,
            PresencePenalty = chat.PresencePenalty ?? sampling.PresencePenalty,
        };
        sampling.Validate();
        return new GenerationOptions
        {
            MaxTokens = chat.MaxOutputTokens ?? defaults.DefaultMaxOutputTokens,
            Sampling = sampling,
            StopStrings = chat.StopSequences is { Count: > 0 } stops ? [.. template.StopStrings, .. stops] : template.StopStrings,
            Format = FormatOf(chat.ResponseFormat),
        };
    }

    /// <summary>Text, or one JSON object (<see cref="ChatResponseFormat.Json"/>); a JSON schema is refused (it needs a grammar per schema).</summary>
    private static KvSharp.Engine.ResponseFormat FormatOf(ChatResponseFormat? format) => format switch
    {
        null or ChatResponseFormatText => KvSharp.Engine.ResponseFormat.Text,
        ChatResponseFormatJson { Schema: null } => KvSharp.Engine.ResponseFormat.JsonObject,
        ChatResponseFormatJson json => throw new NotSupportedException(
            $"ChatOptions.ResponseFormat with a JSON schema ({json.SchemaName ?? "unnamed"}) is not supported: KvSharpChatClient constrains a reply to a JSON object, with no schema (ChatResponseFormat.Json)"),
        _ => throw new NotSupportedException($"ChatOptions.ResponseFormat {format.GetType().Name} is not supported"),
    };

    /// <summary>OpenAI-style: a full context ends a reply for its length, like MaxOutputTokens.</summary>
    public static ChatFinishReason ToFinishReason(FinishReason reason) =>
        reason == FinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length;

    /// <summary>The messages as the template sees them (<see cref="ChatToolMapping.FromMessage"/>); content it cannot render is refused, not dropped.</summary>
    public static List<ChatMessage> ToTemplateMessages(IEnumerable<AIChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return [.. messages.SelectMany(ChatToolMapping.FromMessage)];
    }
}
