using System.CommandLine;
using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Templates;

namespace KvSharp.Cli.Chat;

/// <summary>
/// `kvsharp chat`: an interactive conversation in the terminal that streams each reply and keeps the KV cache across
/// turns. Replies go to stdout; the prompt marker, per-turn cache and speed lines and messages go to stderr. Piped
/// input is read one message per line.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = CommonOptions.ModelOrDefault();
        var tokenizer = CommonOptions.Tokenizer();
        var template = CommonOptions.ChatTemplate();
        var system = new Option<string?>("--system", "-s") { Description = "system prompt (change it in the chat with /system TEXT)" };
        var context = NumberOption.Optional("--context", "context length (default: the model's trained length)", Allowed.AtLeast(1), "-c");
        var kvType = CommonOptions.KvType();
        var maxTokens = NumberOption.Create("--max-tokens", "most tokens per reply", 512, Allowed.AtLeast(1), "-n");
        var temperature = NumberOption.Create("--temperature", "sampling temperature (0 = greedy)", 0.8f, Allowed.AtLeast(0f));
        var topK = NumberOption.Create("--top-k", "keep the k most likely tokens (0 = off)", 40, Allowed.AtLeast(0));
        var topP = NumberOption.Create("--top-p", "nucleus sampling threshold (1 = off)", 0.95f, Allowed.Between(0f, 1f, minIncluded: false));
        var repeat = NumberOption.Create("--repeat-penalty", "repetition penalty (1 = off)", 1f, Allowed.Above(0f));
        var seed = NumberOption.Create("--seed", "random seed", 42UL, Allowed.AnyUInt64);
        var threads = CommonOptions.Threads();
        var command = new Command("chat", "chat with a model in the terminal, keeping the KV cache across turns (/reset, /stats, /system TEXT, /exit)")
        {
            model, tokenizer, template, system, context, kvType, maxTokens, temperature, topK, topP, repeat, seed, threads,
        };
        command.SetAction(r =>
        {
            using var llm = CommonOptions.Load(DefaultModel.Resolve(r.GetValue(model), Console.Error), r.GetValue(tokenizer), r.ThreadCount(threads));
            var chatTemplate = ChatTemplate.ForModel(llm, r.GetValue(template));
            int trained = llm.Config.TrainedContextLength;
            int ctx = r.GetValue(context) ?? trained;
            var kv = r.GetValue(kvType).Value;
            KvMemory.CheckTokens(llm.Config, kv, ctx, $"--context {ctx}", KvMemory.AvailableBytes());
            if (ctx > trained)
                Console.Error.WriteLine($"warning: context {ctx} exceeds the model's trained context length {trained}; quality may degrade past it");
            var generation = new GenerationOptions
            {
                MaxTokens = r.GetValue(maxTokens),
                StopStrings = chatTemplate.StopStrings,
                Sampling = new SamplingOptions
                {
                    Temperature = r.GetValue(temperature),
                    TopK = r.GetValue(topK),
                    TopP = r.GetValue(topP),
                    RepetitionPenalty = r.GetValue(repeat),
                    Seed = r.GetValue(seed),
                },
            };
            using var session = llm.CreateSession(new SessionOptions { ContextLength = ctx, KvElementType = kv, CacheMode = KvCacheMode.Contiguous });
            var conversation = new ChatConversation(session, chatTemplate, llm.Tokenizer);
            conversation.SetSystemPrompt(r.GetValue(system));
            var repl = new ChatRepl(conversation, generation, Console.In, Console.Out, Console.Error, interactive: !Console.IsInputRedirected);
            return repl.Run();
        });
        return command;
    }
}
