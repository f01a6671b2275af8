using System.CommandLine;
using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Cli;

/// <summary>`kvsharp run`: generate text; only the generated text goes to stdout, timing and cache sizes to stderr.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var prompt = new Option<string>("--prompt", "-p") { Description = "prompt text", DefaultValueFactory = _ => "" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "most tokens to generate", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "sampling temperature (0 = greedy)", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "keep the k most likely tokens (0 = off)", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "nucleus sampling threshold (1 = off)", DefaultValueFactory = _ => 1f };
        var minP = new Option<float>("--min-p") { Description = "min-p threshold (0 = off)", DefaultValueFactory = _ => 0f };
        var repeat = new Option<float>("--repeat-penalty") { Description = "repetition penalty (1 = off)", DefaultValueFactory = _ => 1f };
        var presence = new Option<float>("--presence-penalty") { Description = "presence penalty (0 = off)", DefaultValueFactory = _ => 0f };
        var seed = new Option<ulong>("--seed") { Description = "random seed", DefaultValueFactory = _ => 42UL };
        var stop = new Option<string[]>("--stop") { Description = "stop string (repeatable)", AllowMultipleArgumentsPerToken = false };
        var cache = new Option<KvCacheMode>("--cache") { Description = "KV cache: none (recompute every step), contiguous, static", DefaultValueFactory = _ => KvCacheMode.Contiguous };
        var context = new Option<int?>("--context", "-c") { Description = "context length (default: the model's trained length)" };
        var threads = CommonOptions.Threads();
        var kvType = CommonOptions.KvType();
        var command = new Command("run", "generate text from a prompt")
        {
            model, tokenizer, prompt, maxTokens, temperature, topK, topP, minP, repeat, presence, seed, stop, cache, kvType, context, threads,
        };
        command.SetAction(r => CliErrors.Run(() =>
        {
            var kvElements = KvElementTypes.Parse(r.GetValue(kvType)!);
            using var llm = CommonOptions.Load(r.GetValue(model)!, r.GetValue(tokenizer), r.GetValue(threads));
            int trained = llm.Config.TrainedContextLength;
            int ctx = r.GetValue(context) ?? trained;
            if (ctx <= 0) throw new ArgumentException($"--context must be positive, got {ctx}");
            if (ctx > trained)
                Console.Error.WriteLine($"warning: context {ctx} exceeds the model's trained context length {trained}; quality may degrade past it");
            using var session = llm.CreateSession(new SessionOptions { CacheMode = r.GetValue(cache), ContextLength = ctx, KvElementType = kvElements });
            var options = new GenerationOptions
            {
                MaxTokens = r.GetValue(maxTokens),
                StopStrings = r.GetValue(stop) ?? [],
                Sampling = new SamplingOptions
                {
                    Temperature = r.GetValue(temperature),
                    TopK = r.GetValue(topK),
                    TopP = r.GetValue(topP),
                    MinP = r.GetValue(minP),
                    RepetitionPenalty = r.GetValue(repeat),
                    PresencePenalty = r.GetValue(presence),
                    Seed = r.GetValue(seed),
                },
            };
            var stdout = Console.Out;
            foreach (string piece in session.Generate(r.GetValue(prompt) ?? "", options))
            {
                stdout.Write(piece);
                stdout.Flush();
            }
            stdout.WriteLine();
            var s = session.LastStats!;
            if (s.FinishReason == FinishReason.ContextFull)
                Console.Error.WriteLine($"[kvsharp] stopped after {s.GeneratedTokens} tokens: the context of {session.ContextLength} tokens is full " +
                    $"(prompt {s.PromptTokens} + {s.GeneratedTokens} generated); --context N raises it");
            Console.Error.WriteLine(
                $"[kvsharp] cache {session.CacheMode}: prompt {s.PromptTokens} tokens, prefill {s.PrefillTime.TotalMilliseconds:F1} ms ({s.PrefillTokensPerSecond:F1} tok/s); " +
                $"generated {s.GeneratedTokens} tokens, decode {s.DecodeTime.TotalMilliseconds:F1} ms ({s.DecodeTokensPerSecond:F1} tok/s); finish: {s.FinishReason}");
            if (session.CacheMode != KvCacheMode.None)
                Console.Error.WriteLine(
                    $"[kvsharp] KV cache ({session.Cache.ElementType}): {s.KvBytesPerToken} bytes/token, {s.KvBytesUsed} bytes used, {s.KvBytesAllocated} bytes allocated");
            return 0;
        }));
        return command;
    }
}
