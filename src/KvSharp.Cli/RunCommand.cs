using System.CommandLine;
using System.Text;
using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Cli;

/// <summary>`kvsharp run`: generate text; only the generated text goes to stdout, timing and cache sizes to stderr.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = CommonOptions.ModelOrDefault();
        var tokenizer = CommonOptions.Tokenizer();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "prompt text (default: --file, piped input, or empty)" };
        var file = PromptInput.File();
        var maxTokens = NumberOption.Create("--max-tokens", "most tokens to generate", 256, Allowed.AtLeast(0), "-n");
        var sampling = new SamplingCliOptions(new SamplingOptions());
        var stop = new Option<string[]>("--stop") { Description = "stop string (repeatable)", AllowMultipleArgumentsPerToken = false };
        var cache = ChoiceOption.Create("--cache", "KV cache: none (recompute every step), contiguous (grows), static (allocated up front)",
            ChoiceOption.Of<KvCacheMode>(), KvCacheMode.Contiguous);
        var context = NumberOption.Optional("--context", "context length (default: the model's trained length)", Allowed.AtLeast(1), "-c");
        var threads = CommonOptions.Threads();
        var swaFull = CommonOptions.SwaFull();
        var jsonSchema = new Option<string?>("--json-schema")
        {
            Description = "hold the output to a value of this JSON schema (a file, or the schema's text); '{}' or 'object' for any JSON object (JSON mode)",
        };
        var regex = new Option<string?>("--regex")
        {
            Description = "hold the output to a text this regular expression matches whole (JSON Schema's pattern subset; vLLM's guided_regex)",
        };
        var kvTypes = new KvTypeCliOptions();
        var overflow = ChoiceOption.Create("--context-overflow",
            "when the context is full: stop, or shift (keep the first --keep tokens, discard half of the rest, go on)",
            ChoiceOption.Of<ContextOverflow>(), ContextOverflow.Stop);
        var keep = NumberOption.Optional("--keep", "tokens a context shift keeps at the start (default: the BOS token)", Allowed.AtLeast(0));
        var policy = KvPolicyOption.Single("--kv-policy", $"which positions the KV cache keeps: {KvPolicyOption.Forms} (default: full, or the model's sliding window)");
        var promptCache = new Option<string?>("--prompt-cache")
        {
            Description = "session file: if it exists, restore it and skip the prefill of its tokens that start the prompt; save the session to it after the run",
        };
        var command = new Command("run", "generate text from a prompt (with no --model: the bundled stories260K.gguf)")
        {
            model, tokenizer, prompt, file, maxTokens, stop, cache, context, threads, overflow, keep, promptCache, policy, swaFull, jsonSchema, regex,
        };
        foreach (var option in kvTypes.All.Concat(sampling.All)) command.Options.Add(option);
        command.SetAction(r =>
        {
            if (r.GetValue(keep) is { } kept && r.GetValue(overflow).Value != ContextOverflow.Shift)
                throw new ArgumentException($"--keep {kept} only applies to a context shift: add --context-overflow shift, or leave --keep out");
            string text = PromptInput.Read(r.GetValue(prompt), r.GetValue(file), Console.In, Console.IsInputRedirected);
            var kv = kvTypes.Read(r);
            var sessionOptions = new SessionOptions
            {
                CacheMode = r.GetValue(cache).Value,
                KeyElementType = kv.Keys,
                ValueElementType = kv.Values,
                ContextOverflow = r.GetValue(overflow).Value,
                ContextShiftKeep = r.GetValue(keep),
                CachePolicy = r.GetValue(policy),
                FullLocalLayers = r.GetValue(swaFull),
            };
            if (r.GetValue(stop) is { } stops && stops.Any(string.IsNullOrEmpty))
                throw new ArgumentException("--stop must not be empty: an empty stop string would end the reply before its first token");
            var options = new GenerationOptions
            {
                MaxTokens = r.GetValue(maxTokens),
                StopStrings = r.GetValue(stop) ?? [],
                Sampling = sampling.Read(r),
            };
            if (r.GetValue(jsonSchema) is { } schemaText) options = WithJson(options, schemaText);
            if (r.GetValue(regex) is { } pattern)
            {
                if (options.Format != ResponseFormat.Text) throw new ArgumentException("--regex and --json-schema each hold the whole output: give one of them");
                options = options with { Format = ResponseFormat.Pattern, Pattern = KvSharp.Sampling.PatternPrefix.WholeText(pattern, "--regex") };
            }
            using var llm = CommonOptions.Load(DefaultModel.Resolve(r.GetValue(model), Console.Error), r.GetValue(tokenizer), r.ThreadCount(threads), r.GetValue(context));
            int trained = llm.Config.TrainedContextLength;
            int ctx = r.GetValue(context) ?? trained;
            CheckFits(llm, sessionOptions, ctx, text, options.MaxTokens);
            KvPolicyOption.CheckFits("--kv-policy", sessionOptions.CachePolicy, ctx);
            if (sessionOptions.ContextShiftKeep >= ctx)
                throw new ArgumentException($"--keep {sessionOptions.ContextShiftKeep} must be below the context length {ctx}: a context shift must leave a position to discard");
            if (ctx > trained)
                Console.Error.WriteLine($"warning: context {ctx} exceeds the model's trained context length {trained}; quality may degrade past it");
            string? cacheFile = r.GetValue(promptCache);
            if (cacheFile != null) OutputPaths.CheckFile("--prompt-cache", cacheFile);
            if (cacheFile != null && sessionOptions.CacheMode == KvCacheMode.None)
                throw new ArgumentException("--prompt-cache needs a KV cache to save: use --cache contiguous or static, not none");
            // A first turn: BOS, and the text never read as special tokens (what session.Generate does).
            int[] promptTokens = llm.Tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
            if (promptTokens.Length > ctx)
                throw new ArgumentException($"the prompt is {promptTokens.Length} tokens, more than the context of {ctx}: shorten it or raise --context " +
                    $"(the model's trained context is {trained})");
            using var session = llm.CreateSession(sessionOptions with { ContextLength = ctx });
            // Refused before anything is generated, not after: a run whose session cannot be saved writes nothing.
            if (cacheFile != null) session.EnsureSavable();
            var stdout = Console.Out;
            var pieces = session.GenerateTokens(cacheFile == null ? promptTokens : PromptCacheFile.Restore(session, cacheFile, promptTokens, Console.Error), options);
            foreach (string piece in pieces)
            {
                stdout.Write(piece);
                stdout.Flush();
            }
            stdout.WriteLine();
            if (cacheFile != null) PromptCacheFile.Save(session, cacheFile);
            var s = session.LastStats!;
            if (s.FinishReason == FinishReason.ContextFull)
                Console.Error.WriteLine($"[kvsharp] stopped after {s.GeneratedTokens} tokens: the context of {session.ContextLength} tokens is full " +
                    $"(prompt {s.PromptTokens} + {s.GeneratedTokens} generated); --context N raises it, --context-overflow shift goes on past it");
            if (sessionOptions.ContextOverflow == ContextOverflow.Shift)
                Console.Error.WriteLine($"[kvsharp] context shifts: {s.ContextShifts} ({s.ShiftedOutTokens} tokens discarded)");
            Console.Error.WriteLine(
                $"[kvsharp] cache {session.CacheMode.ToString().ToLowerInvariant()}: prompt {s.PromptTokens} tokens, prefill {s.PrefillTime.TotalMilliseconds:F1} ms ({s.PrefillTokensPerSecond:F1} tok/s); " +
                $"generated {s.GeneratedTokens} tokens, decode {s.DecodeTime.TotalMilliseconds:F1} ms ({s.DecodeTokensPerSecond:F1} tok/s); finish: {s.FinishReason}");
            if (session.CacheMode != KvCacheMode.None)
                Console.Error.WriteLine(
                    $"[kvsharp] KV cache ({session.Cache.Format.Name}): {s.KvBytesPerToken} bytes/token" +
                    (session.Cache.ExactBytes > 0 ? $" + {session.Cache.ExactBytes} bytes of exact rows" : "") +
                    $", {s.KvBytesUsed} bytes used, {s.KvBytesAllocated} bytes allocated" +
                    (session.Cache.LocalLayerRows > 0 ? $" (the local layers keep a ring of {session.Cache.LocalLayerRows} positions)" : ""));
            return 0;
        });
        return command;
    }

    /// <summary>
    /// The KV cache this run can reach must fit in memory: a static cache allocates the whole context up front; a
    /// growing one (and mode none's scratch cache) at most the prompt plus --max-tokens, and never past the context.
    /// A prompt has at most one token per UTF-8 byte, plus BOS and EOS.
    /// </summary>
    private static void CheckFits(LlmModel llm, SessionOptions session, int context, string prompt, int maxTokens)
    {
        bool isStatic = session.CacheMode == KvCacheMode.Static;
        long reach = Math.Min(context, Encoding.UTF8.GetByteCount(prompt) + 2L + maxTokens);
        string what = isStatic ? $"--context {context} with --cache static" : $"--context {context} with a prompt of {prompt.Length} characters and --max-tokens {maxTokens}";
        KvMemory.CheckTokens(llm.Config, session.KvFormat, isStatic ? context : reach, what, KvMemory.AvailableBytes(), session.FullLocalLayers);
    }

    /// <summary>--json-schema: "{}" or "object" is JSON mode (any object); else a schema, from a file or as written.</summary>
    private static GenerationOptions WithJson(GenerationOptions options, string schemaText)
    {
        if (schemaText is "{}" or "object") return options with { Format = ResponseFormat.JsonObject };
        string json = File.Exists(schemaText) ? File.ReadAllText(schemaText) : schemaText;
        System.Text.Json.JsonDocument doc;
        try
        {
            doc = System.Text.Json.JsonDocument.Parse(json);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ArgumentException($"--json-schema is neither a file nor JSON: {e.Message}");
        }
        using (doc)
            return options with { Format = ResponseFormat.JsonSchema, Schema = KvSharp.Sampling.JsonSchemaPrefix.For(doc.RootElement) };
    }
}
