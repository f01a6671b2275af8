using System.CommandLine;
using KvSharp.Cache;

namespace KvSharp.Cli;

/// <summary>Options several commands share.</summary>
internal static class CommonOptions
{
    public static Option<string> Model() => new("--model", "-m") { Description = "GGUF model file or llama2.c checkpoint", Required = true };

    /// <summary>--model for commands that fall back to the bundled model (<see cref="DefaultModel"/>).</summary>
    public static Option<string?> ModelOrDefault() => new("--model", "-m")
    {
        Description = $"GGUF model file or llama2.c checkpoint (default: the bundled {DefaultModel.FileName})",
    };

    /// <summary>--chat-template for the commands that render chats (resolve with <see cref="Templates.ChatTemplate.ForModel"/>).</summary>
    public static Option<string?> ChatTemplate() => new("--chat-template")
    {
        Description = $"chat template: a built-in name ({string.Join(", ", Templates.ChatTemplate.BuiltInNames)}) or a Jinja file " +
            "(default: the model's tokenizer.chat_template; without one, chatml if the vocabulary has <|im_start|>, else plain)",
    };

    public static Option<string?> Tokenizer() => new("--tokenizer") { Description = "tokenizer.bin for a llama2.c checkpoint" };

    /// <summary>
    /// Most kernel threads --threads accepts. Fixed rather than a multiple of this machine's cores, so a command line
    /// means the same on every machine; above the hardware threads of the largest servers (a few hundred), so only a
    /// slip (10000 for 100) meets it, which would otherwise start that many spinning workers on a few cores.
    /// </summary>
    public const int MaxThreads = 1024;

    /// <summary>No default value in the option itself: help would print the core count as a second default.</summary>
    public static Option<int?> Threads() => NumberOption.Optional("--threads",
        $"kernel worker threads (default: all cores, {Environment.ProcessorCount} here)", Allowed.WholeNumberBetween(1, MaxThreads), "-t");

    public static int ThreadCount(this ParseResult r, Option<int?> threads) => r.GetValue(threads) ?? Environment.ProcessorCount;

    public static Option<bool> SwaFull() => new("--swa-full")
    {
        Description = "keep every position in the layers with a sliding window of their own (Gemma 2/3's local layers), as llama.cpp's --swa-full; " +
                      "by default a session keeps a ring of their window and serve's pool lets go of their blocks behind it (a rewind past it recomputes)",
    };

    public static Option<Choice<KvElementType>> KvType() => ChoiceOption.Create("--kv-type",
        "how the KV cache stores keys and values: f32 (exact), f16 (half the memory), q8_0 (8-bit integers with a float scale per 32: ~0.28x the memory) " +
        "q4_0 (4-bit integers with a float scale per 32: ~0.16x the memory), " +
        "kivi4 / kivi2 (KIVI: keys per channel, values per token, 32 positions at a time, 4 or 2 bits; paged: blocks of a multiple of 32, no prefix cache)",
        ChoiceOption.Of<KvElementType>(), KvElementType.F32, ParseKvAlias);

    /// <summary>The library's other spellings ("float16", "half", "q8"), accepted but not listed.</summary>
    public static KvElementType? ParseKvAlias(string text)
    {
        try { return KvElementTypes.Parse(text); }
        catch (ArgumentException) { return null; }
    }

    /// <param name="context">The --context sessions will use, if given: a LongRoPE model picks its rope factors by it.</param>
    public static LlmModel Load(string model, string? tokenizer, int threads, int? context = null)
    {
        CheckNotDirectory("--model", model);
        if (tokenizer != null)
        {
            CheckNotDirectory("--tokenizer", tokenizer, "the tokenizer.bin inside it");
            CheckTokenizerWanted(model);
        }
        return LlmModel.Load(model, new ModelLoadOptions { TokenizerPath = tokenizer, Threads = threads, ContextLength = context });
    }

    /// <summary>
    /// A GGUF file carries its own tokenizer, so a --tokenizer beside it would be ignored: said instead, since whoever
    /// gave it expects it to be used.
    /// </summary>
    public static void CheckTokenizerWanted(string model)
    {
        if (LlmModel.IsGguf(model))
            throw new ArgumentException($"--tokenizer is only for a llama2.c checkpoint; --model {model} is a GGUF file, which has its own tokenizer (leave --tokenizer out)");
    }

    /// <summary>A directory would otherwise be reported as "not found", which sends people looking in the wrong place.</summary>
    /// <param name="file">What belongs there, for the message ("the model file inside it (...)").</param>
    public static void CheckNotDirectory(string option, string path, string file = "the model file inside it (a .gguf file or a llama2.c .bin checkpoint)")
    {
        if (Directory.Exists(path))
            throw new ArgumentException($"{option} {path} is a directory; give {file}");
    }
}
