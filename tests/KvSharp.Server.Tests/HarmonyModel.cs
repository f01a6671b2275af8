namespace KvSharp.Server.Tests;

/// <summary>
/// gpt-oss reduced to what a chat reads (for <see cref="ToolCallingModel.Write"/>): a template whose turns are Harmony
/// messages, an assistant's thinking as its analysis, and the replies its weights write.
/// </summary>
public static class HarmonyModel
{
    public const string Template =
        "{%- for m in messages %}{% if m.role == 'assistant' %}{% if m.thinking %}<|start|>assistant<|channel|>analysis<|message|>{{ m.thinking }}<|end|>{% endif %}" +
        "<|start|>assistant<|channel|>final<|message|>{{ m.content }}<|end|>\n{% else %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>\n{% endif %}{% endfor %}" +
        "{%- if add_generation_prompt %}<|start|>assistant\n{% endif %}";

    /// <summary>A template that prints the variables a request may add (reasoning_effort, enable_thinking, a nested one).</summary>
    public const string VariablesTemplate =
        "{% if reasoning_effort is defined %}Reasoning: {{ reasoning_effort }}\n{% endif %}" +
        "{% if enable_thinking is defined %}Thinking: {{ enable_thinking }}\n{% endif %}" +
        "{% if budget is defined %}Budget: {{ budget.tokens }}\n{% endif %}" +
        "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|start|>assistant{% endif %}";

    /// <summary>What the model writes after the prompt: its analysis, then its answer (each piece one token).</summary>
    public static readonly string[] Answer = ["<|channel|>analysis<|message|>Let me see.<|end|>", "<|start|>assistant<|channel|>final<|message|>", "It is sunny."];

    /// <summary>Its analysis, then a call to get_weather (the recipient after the channel, as gpt-oss also writes it).</summary>
    public static readonly string[] Call = ["<|channel|>analysis<|message|>Need the weather.<|end|>", "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
        "{\"city\": \"Paris\"}"];
}
