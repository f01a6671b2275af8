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
            LogitBias = LogitBias(chat) ?? sampling.LogitBias,
        };
        sampling.Validate();
        return new GenerationOptions
        {
            MaxTokens = chat.MaxOutputTokens ?? defaults.DefaultMaxOutputTokens,
            Sampling = sampling,
            StopStrings = chat.StopSequences is { Count: > 0 } stops ? [.. template.StopStrings, .. stops] : template.StopStrings,
            Format = FormatOf(chat.ResponseFormat),
            Schema = chat.ResponseFormat is ChatResponseFormatJson { Schema: { } schema } json ? SchemaOf(schema, json.SchemaName) : null,
        };
    }

    /// <summary>
    /// AdditionalProperties["logit_bias"] (Microsoft.Extensions.AI has no field of its own; the name is OpenAI's): a
    /// dictionary from token ids (numbers, or their decimal strings) to numeric biases, as
    /// <see cref="Sampling.SamplingOptions.LogitBias"/> takes them. Null when absent.
    /// </summary>
    private static IReadOnlyDictionary<int, float>? LogitBias(ChatOptions chat)
    {
        if (chat.AdditionalProperties?.TryGetValue("logit_bias", out object? value) != true || value == null) return null;
        const string Where = "ChatOptions.AdditionalProperties[\"logit_bias\"]";
        if (value is not System.Collections.IDictionary entries)
            throw new ArgumentException($"{Where} must be a dictionary from token ids to biases, got a {value.GetType().Name}", nameof(chat));
        var bias = new Dictionary<int, float>();
        foreach (System.Collections.DictionaryEntry e in entries)
        {
            int token = e.Key switch
            {
                int i => i,
                long l and >= int.MinValue and <= int.MaxValue => (int)l,
                string text when int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int parsed) => parsed,
                _ => throw new ArgumentException($"{Where}: keys must be token ids, got '{e.Key}'", nameof(chat)),
            };
            float amount = e.Value switch
            {
                float f => f,
                double d => (float)d,
                int i => i,
                long l => l,
                decimal m => (float)m,
                _ => throw new ArgumentException($"{Where}[{e.Key}] must be a number, got {e.Value ?? "null"}", nameof(chat)),
            };
            if (!bias.TryAdd(token, amount)) throw new ArgumentException($"{Where} names token {token} twice", nameof(chat));
        }
        return bias;
    }

    /// <summary>
    /// The chat template's variables beside the messages: the tools; <see cref="ChatOptions.Reasoning"/>'s effort as
    /// reasoning_effort ("none", "low", "medium", "high", "xhigh": OpenAI's names, which gpt-oss's template writes into its
    /// system message and others ignore); and AdditionalProperties["chat_template_kwargs"], a dictionary of variables by
    /// name (llama-server's and vLLM's field, e.g. Qwen3's enable_thinking). Null when there are none.
    /// </summary>
    public static IReadOnlyDictionary<string, object?>? TemplateVariables(ChatOptions? chat, ChatToolMapping? tools)
    {
        var variables = new Dictionary<string, object?>(tools?.TemplateVariables ?? new Dictionary<string, object?>(), StringComparer.Ordinal);
        if (chat?.AdditionalProperties?.TryGetValue("chat_template_kwargs", out object? kwargs) == true && kwargs != null)
        {
            if (kwargs is not IEnumerable<KeyValuePair<string, object?>> pairs)
                throw new ArgumentException($"ChatOptions.AdditionalProperties[\"chat_template_kwargs\"] must be a dictionary of template variables, got a {kwargs.GetType().Name}", nameof(chat));
            foreach (var (name, value) in pairs)
            {
                if (ChatTemplate.RequestVariables.Contains(name))
                    throw new ArgumentException($"chat_template_kwargs cannot set '{name}': the client sets it from the request", nameof(chat));
                variables[name] = value;
            }
        }
        if (chat?.Reasoning?.Effort is ReasoningEffort effort)
            variables["reasoning_effort"] = effort switch
            {
                ReasoningEffort.None => "none",
                ReasoningEffort.Low => "low",
                ReasoningEffort.Medium => "medium",
                ReasoningEffort.High => "high",
                ReasoningEffort.ExtraHigh => "xhigh",
                _ => throw new ArgumentOutOfRangeException(nameof(chat), effort, "ChatOptions.Reasoning.Effort is not a known effort"),
            };
        return variables.Count == 0 ? null : variables;
    }

    /// <summary>Text, one JSON object (<see cref="ChatResponseFormat.Json"/>), or a value of a JSON schema (<c>ForJsonSchema</c>, <c>GetResponseAsync&lt;T&gt;</c>).</summary>
    private static KvSharp.Engine.ResponseFormat FormatOf(ChatResponseFormat? format) => format switch
    {
        null or ChatResponseFormatText => KvSharp.Engine.ResponseFormat.Text,
        ChatResponseFormatJson { Schema: null } => KvSharp.Engine.ResponseFormat.JsonObject,
        ChatResponseFormatJson => KvSharp.Engine.ResponseFormat.JsonSchema,
        _ => throw new NotSupportedException($"ChatOptions.ResponseFormat {format.GetType().Name} is not supported"),
    };

    private static KvSharp.Sampling.JsonSchemaPrefix SchemaOf(System.Text.Json.JsonElement schema, string? name)
    {
        try
        {
            return KvSharp.Sampling.JsonSchemaPrefix.For(schema);
        }
        catch (ArgumentException e)
        {
            throw new NotSupportedException($"ChatOptions.ResponseFormat's JSON schema {name ?? ""}: {e.Message}", e);
        }
    }

    /// <summary>OpenAI-style: a full context ends a reply for its length, like MaxOutputTokens.</summary>
    public static ChatFinishReason ToFinishReason(FinishReason reason) =>
        reason == FinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length;

    /// <summary>
    /// <see cref="ChatOptions.Instructions"/> in front of the messages, for this request only: joined ahead of the first
    /// message where that is a system message (many chat templates take one system message, and only first), else as a
    /// system message of their own, as Microsoft.Extensions.AI's OpenAI client sends them. The messages unchanged when
    /// there are none.
    /// </summary>
    public static IReadOnlyList<ChatMessage> WithInstructions(IReadOnlyList<ChatMessage> messages, string? instructions)
    {
        if (string.IsNullOrWhiteSpace(instructions)) return messages;
        if (messages.Count > 0 && messages[0].Role == "system")
            return [messages[0] with { Content = instructions + "\n\n" + messages[0].Content }, .. messages.Skip(1)];
        return [ChatMessage.System(instructions), .. messages];
    }

    /// <summary>The messages as the template sees them (<see cref="ChatToolMapping.FromMessage"/>); content it cannot render is refused, not dropped.</summary>
    public static List<ChatMessage> ToTemplateMessages(IEnumerable<AIChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return [.. messages.SelectMany(ChatToolMapping.FromMessage)];
    }
}
