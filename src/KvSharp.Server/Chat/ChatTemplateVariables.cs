using System.Text.Json;
using KvSharp.Server.Errors;
using KvSharp.Templates;

namespace KvSharp.Server.Chat;

/// <summary>
/// What a request adds to the chat template's variables beside the messages: its tools, llama-server's and vLLM's
/// <c>chat_template_kwargs</c> (any JSON values by name: Qwen3's <c>enable_thinking</c>, gpt-oss's
/// <c>reasoning_effort</c>, ...), and OpenAI's <c>reasoning_effort</c> as the template variable of that name, which
/// gpt-oss's template reads ("Reasoning: low") and others ignore.
/// </summary>
internal static class ChatTemplateVariables
{
    /// <summary>OpenAI's values of reasoning_effort.</summary>
    private static readonly string[] Efforts = ["none", "minimal", "low", "medium", "high", "xhigh"];

    /// <summary>The variables, or null when the request adds none.</summary>
    public static IReadOnlyDictionary<string, object?>? Of(ChatTools? tools, JsonElement kwargs, string? reasoningEffort)
    {
        var variables = new Dictionary<string, object?>(tools?.TemplateVariables ?? new Dictionary<string, object?>(), StringComparer.Ordinal);
        if (kwargs.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
        {
            if (kwargs.ValueKind != JsonValueKind.Object)
                throw ApiError.InvalidType("chat_template_kwargs", $"chat_template_kwargs must be an object of template variables, got a {kwargs.ValueKind}");
            foreach (var property in kwargs.EnumerateObject())
            {
                // Variables the server sets itself: a kwarg cannot replace them.
                if (ChatTemplate.RequestVariables.Contains(property.Name))
                    throw ApiError.InvalidValue("chat_template_kwargs", $"chat_template_kwargs cannot set '{property.Name}': the server sets it from the request");
                variables[property.Name] = property.Value.Clone();
            }
        }
        if (reasoningEffort != null)
        {
            if (!Efforts.Contains(reasoningEffort))
                throw ApiError.InvalidValue("reasoning_effort", $"reasoning_effort '{reasoningEffort}' is not one of {string.Join(", ", Efforts)}");
            if (variables.TryGetValue("reasoning_effort", out var given) && !(given is JsonElement { ValueKind: JsonValueKind.String } s && s.GetString() == reasoningEffort))
                throw ApiError.InvalidValue("reasoning_effort", $"reasoning_effort '{reasoningEffort}' differs from chat_template_kwargs.reasoning_effort");
            variables["reasoning_effort"] = reasoningEffort;
        }
        return variables.Count == 0 ? null : variables;
    }
}
