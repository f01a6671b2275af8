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
        var kvTypes = new KvTypeCliOptions();
        var maxTokens = NumberOption.Create("--max-tokens", "most tokens per reply", 512, Allowed.AtLeast(1), "-n");
        // llama.cpp's sampling defaults for chat: a conversation wants variety, not the greedy loop `run` defaults to.
        var sampling = new SamplingCliOptions(new SamplingOptions { Temperature = 0.8f, TopK = 40, TopP = 0.95f });
        var threads = CommonOptions.Threads();
        var swaFull = CommonOptions.SwaFull();
        var command = new Command("chat", "chat with a model in the terminal, keeping the KV cache across turns (/reset, /stats, /system TEXT, /exit)")
        {
            model, tokenizer, template, system, context, maxTokens, threads, swaFull,
        };
        foreach (var option in kvTypes.All.Concat(sampling.All)) command.Options.Add(option);
        command.SetAction(r =>
        {
            using var llm = CommonOptions.Load(DefaultModel.Resolve(r.GetValue(model), Console.Error), r.GetValue(tokenizer), r.ThreadCount(threads), r.GetValue(context));
            var chatTemplate = ChatTemplate.ForModel(llm, r.GetValue(template));
            int trained = llm.Config.TrainedContextLength;
            int ctx = r.GetValue(context) ?? trained;
            var kv = kvTypes.Read(r);
            KvMemory.CheckTokens(llm.Config, kv.Format, ctx, $"--context {ctx}", KvMemory.AvailableBytes(), r.GetValue(swaFull));
            if (ctx > trained)
                Console.Error.WriteLine($"warning: context {ctx} exceeds the model's trained context length {trained}; quality may degrade past it");
            var generation = new GenerationOptions
            {
                MaxTokens = r.GetValue(maxTokens),
                StopStrings = chatTemplate.StopStrings,
                Sampling = sampling.Read(r),
            };
            using var session = llm.CreateSession(new SessionOptions
            {
                ContextLength = ctx, KeyElementType = kv.Keys, ValueElementType = kv.Values, CacheMode = KvCacheMode.Contiguous, FullLocalLayers = r.GetValue(swaFull),
            });
            var conversation = new ChatConversation(session, chatTemplate, llm.Tokenizer);
            conversation.SetSystemPrompt(r.GetValue(system));
            var repl = new ChatRepl(conversation, generation, Console.In, Console.Out, Console.Error, interactive: !Console.IsInputRedirected);
            return repl.Run();
        });
        return command;
    }
}
