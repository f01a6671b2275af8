using KvSharp.Gguf;

namespace KvSharp.Server.Tests;

/// <summary>
/// A real GGUF whose weights spell a tool call: a one-layer llama whose attention and feed-forward weights are zero, so
/// each next token depends on the current one only (a bigram table in its output matrix). After a prompt's last
/// newline it writes <c>&lt;tool_call&gt;</c>, the call <see cref="CallText"/> (one user-defined token),
/// <c>&lt;/tool_call&gt;</c> and its end-of-turn token; its chat template is Hermes-style (tools in the system turn,
/// calls between &lt;tool_call&gt; tags). What a tool-calling model does, reduced to what the server must handle.
/// </summary>
public static class ToolCallingModel
{
    public const string CallText = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";

    public const string Template =
        "{%- if tools %}<|im_start|>system\nYou may call these functions:<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools><|im_end|>\n{% endif %}" +
        "{%- for m in messages %}<|im_start|>{{ m.role }}\n{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{\"name\": \"{{ c.function.name }}\", " +
        "\"arguments\": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}" +
        "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    /// <summary>A Qwen3-style template: the same turns, its model thinking in &lt;think&gt; tags before it answers.</summary>
    public const string ThinkingTemplate =
        "{#- The model may think first, between <think> and </think>. -#}" +
        "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    /// <summary>What the thinking model writes after a prompt's last newline.</summary>
    public static readonly string[] ThinkingScript = ["<think>", "Let me see.", "</think>", "\n\nIt is sunny."];

    /// <summary><see cref="Template"/> for a model that may think first in &lt;think&gt; tags (its source names both tags).</summary>
    public const string ThinkingToolTemplate = "{#- The model may think first, between <think> and </think>. -#}" + Template;

    /// <summary>What a model that thinks, says what it will do, then calls a tool writes after a prompt's last newline.</summary>
    public static readonly string[] ThinkThenCallScript = ["<think>", "Let me see.", "</think>", "Let me check", " the weather.", "<tool_call>", CallText, "</tool_call>"];

    /// <summary>The arguments <see cref="ArgumentsInPiecesScript"/> writes.</summary>
    public const string PiecesArguments = "{\"city\": \"Paris\", \"days\": [1, 2]}";

    /// <summary>What a model that says what it will do, then writes a call's JSON a few tokens at a time, writes after a prompt's last newline.</summary>
    public static readonly string[] ArgumentsInPiecesScript =
        ["Let me check.", "<tool_call>", "\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": ", "\"Paris\", \"days\": ", "[1, 2]}}", "\n</tool_call>"];

    /// <summary>The second call <see cref="TwoCallsScript"/> writes.</summary>
    public const string SecondCallText = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}";

    /// <summary>What a model that makes two calls in one reply writes (every token distinct: its table is a bigram's).</summary>
    public static readonly string[] TwoCallsScript = ["<tool_call>", CallText, "</tool_call>", "\n<tool_call>\n", SecondCallText, "\n</tool_call>"];

    /// <summary>
    /// A Mistral-style template (its source names [TOOL_CALLS]; no &lt;tool_call&gt;, which would make it Hermes), for a
    /// model whose call marker is a control token (<see cref="MarkerTokenScript"/>).
    /// </summary>
    public const string MarkerTemplate =
        "{#- Calls follow [TOOL_CALLS] as a JSON list. -#}" +
        "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    /// <summary>What a model whose call marker is a control token writes: the marker, then the call list in pieces.</summary>
    public static readonly string[] MarkerTokenScript = ["[TOOL_CALLS]", "[{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": ", "\"Paris\"}}]"];

    private const int Bytes = 3, ImStart = 259, ImEnd = 260, Embedding = 384;

    /// <summary>The model's second choice after a newline, in <see cref="Write"/>'s <c>secondChoice</c>: a call's JSON as a forced call writes it.</summary>
    public const string SecondChoiceCall = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}";

    /// <summary>
    /// Writes the model to a fresh temporary file; returns its path. <paramref name="script"/>: the user-defined tokens it
    /// writes after a prompt's last newline, in order, then its end-of-turn (default: the Hermes tool call);
    /// <paramref name="template"/>: its chat template (default <see cref="Template"/>); <paramref name="secondChoice"/>:
    /// one more user-defined token, less likely than the script's first after a newline and more than ending the turn
    /// (what a model held to some text writes when its first choice is not allowed); <paramref name="control"/>: the
    /// script's tokens that are control tokens, whose text a reply does not show (Mistral's [TOOL_CALLS] is one).
    /// </summary>
    public static string Write(string[]? script = null, string? template = null, string? secondChoice = null, string[]? control = null)
    {
        script ??= ["<tool_call>", CallText, "</tool_call>"];
        string[] defined = secondChoice == null ? script : [.. script, secondChoice];
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        for (int b = 0; b < 256; b++) tokens.Add($"<0x{b:X2}>");
        tokens.AddRange(["<|im_start|>", "<|im_end|>", .. defined]);
        int[] types = [2, 3, 3, .. Enumerable.Repeat(6, 256), 3, 3, .. defined.Select(t => control?.Contains(t) == true ? 3 : 4)];
        int Vocab = tokens.Count;
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", "kvsharp-test-tool-calling");
        w.Add("llama.context_length", 1024u);
        w.Add("llama.embedding_length", (uint)Embedding);
        w.Add("llama.block_count", 1u);
        w.Add("llama.feed_forward_length", 64u);
        w.Add("llama.attention.head_count", 6u);
        w.Add("llama.attention.head_count_kv", 6u);
        w.Add("llama.attention.layer_norm_rms_epsilon", 1e-6f);
        w.Add("llama.rope.dimension_count", 64u);
        w.Add("llama.vocab_size", (uint)Vocab);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", GgufValue.Of(tokens.ToArray()));
        w.Add("tokenizer.ggml.scores", GgufValue.Of(new float[Vocab]));
        w.Add("tokenizer.ggml.token_type", GgufValue.Of(types));
        w.Add("tokenizer.ggml.unknown_token_id", 0u);
        w.Add("tokenizer.ggml.bos_token_id", 1u);
        w.Add("tokenizer.ggml.eos_token_id", (uint)ImEnd);
        w.Add("tokenizer.ggml.add_bos_token", false);
        w.Add("tokenizer.chat_template", template ?? Template);

        // One-hot embeddings: the final norm keeps token t's direction, and output row n reads column t where t -> n.
        var embedding = new float[Vocab * Embedding];
        for (int t = 0; t < Vocab; t++) embedding[t * Embedding + t] = 1;
        var output = new float[Vocab * Embedding];
        void Next(int from, int to) => output[to * Embedding + from] = 1;
        // The script: a newline, then each token, then the end of the turn.
        int first = ImEnd + 1;
        Next(Bytes + '\n', first);
        for (int i = 0; i < script.Length; i++) Next(first + i, i + 1 < script.Length ? first + i + 1 : ImEnd);
        if (secondChoice != null) output[(first + script.Length) * Embedding + Bytes + '\n'] = 0.75f;
        // Anything else ends the turn (half the weight, so a bigram above wins).
        for (int c = 0; c < Embedding; c++) output[ImEnd * Embedding + c] += 0.5f;
        float[] Ones(int n) => Enumerable.Repeat(1f, n).ToArray();
        w.AddTensor("token_embd.weight", [Embedding, Vocab], embedding);
        w.AddTensor("blk.0.attn_norm.weight", [Embedding], Ones(Embedding));
        foreach (string m in new[] { "attn_q", "attn_k", "attn_v", "attn_output" })
            w.AddTensor($"blk.0.{m}.weight", [Embedding, Embedding], new float[Embedding * Embedding]);
        w.AddTensor("blk.0.ffn_norm.weight", [Embedding], Ones(Embedding));
        w.AddTensor("blk.0.ffn_gate.weight", [Embedding, 64], new float[Embedding * 64]);
        w.AddTensor("blk.0.ffn_up.weight", [Embedding, 64], new float[Embedding * 64]);
        w.AddTensor("blk.0.ffn_down.weight", [64, Embedding], new float[64 * Embedding]);
        w.AddTensor("output_norm.weight", [Embedding], Ones(Embedding));
        w.AddTensor("output.weight", [Embedding, Vocab], output);
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-tool-calling-{Environment.ProcessId}-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        return path;
    }
}
