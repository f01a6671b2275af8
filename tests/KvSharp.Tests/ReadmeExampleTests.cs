using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Extensions.AI;
using KvSharp.Sampling;
using KvSharp.Templates;
using Microsoft.Extensions.AI;
using ChatMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Tests;

/// <summary>Keeps the README's C# example compiling and running: its body is copied here and compared line by line.</summary>
public class ReadmeExampleTests
{
    // ---- README example begins (less its using lines and the `string modelPath = ...` line) ----
    private static void Example(string modelPath)
    {
using var model = LlmModel.Load(modelPath);
using var session = model.CreateSession(new SessionOptions { CacheMode = KvCacheMode.Contiguous, ContextLength = 512 });
foreach (string piece in session.Generate("Once upon a time", new GenerationOptions { MaxTokens = 50 }))
    Console.Write(piece);
// The next turn continues the same cache: only the new tokens are computed.
foreach (string piece in session.Generate(" The end.", new GenerationOptions { MaxTokens = 20 }))
    Console.Write(piece);
Console.WriteLine(session.LastStats);

// Lower level, past_key_values style: you hold the cache.
var cache = model.CreateCache(KvCacheMode.Static, contextLength: 512);
float[] logits = model.Evaluate([1, 410, 469, 347], cache);   // prefill: BOS "Zoo"
logits = model.Evaluate([Sampler.ArgMax(logits)], cache);      // one decode step
cache.Shift(keep: 1, discard: 2, model.Rope);   // context shift: keep BOS, drop 2, move the rest down
cache.Truncate(2);   // rewind to the first two positions
cache.Reset();       // start over, zeroed
    }
    // ---- README example ends ----

    // ---- README example begins (the engine) ----
    private static void EngineExample(LlmModel model)
    {
using var engine = new LlmEngine(model, new EngineOptions
{
    KvBudgetBytes = 64 << 20,
    BlockSize = 16,
    KvElementType = KvElementType.F16,      // half the bytes per token: twice the tokens in the budget
});
var handle = engine.Submit(new EngineRequest
{
    PromptTokens = model.Tokenizer.Encode("Once upon a time", addSpecial: true, parseSpecial: false),
    Options = new GenerationOptions { MaxTokens = 64 },
    SampleCount = 2,                        // parallel samples share the prompt's blocks
});
engine.RunUntilIdle();                      // or: _ = engine.RunAsync(cancellationToken);
Console.WriteLine(handle.OutputText[0]);
    }
    // ---- README example ends ----

    // ---- README example begins (a chat template) ----
    private static void ChatExample(LlmModel model)
    {
var template = ChatTemplate.ForModel(model);   // tokenizer.chat_template, --chat-template's choices, or the fallback
var rendered = template.Render([ChatMessage.System("You tell stories."), ChatMessage.User("Tell me about a cat")],
    addGenerationPrompt: true, model.Tokenizer);
int[] prompt = rendered.Tokenize(model.Tokenizer);   // the template's special tokens parsed, the messages' never
using var chat = model.CreateSession();
foreach (string piece in chat.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 30, StopStrings = template.StopStrings }))
    Console.Write(piece);
    }
    // ---- README example ends ----

#pragma warning disable xUnit1051 // the README shows calls without a cancellation token
    // ---- README example begins (IChatClient) ----
    private static async Task ChatClientExample(LlmModel model)
    {
using var client = new KvSharpChatClient(model);   // an IChatClient: wrap it in any ChatClientBuilder middleware
var conversation = client.StartConversation();     // its own KV cache, kept between calls
var options = new ChatOptions { ConversationId = conversation.Id, MaxOutputTokens = 30 };
Console.WriteLine(await client.GetResponseAsync("Hello", options));
// Only the new message: the conversation holds the history, and its cache serves the earlier turns.
var reply = await client.GetResponseAsync("Tell me about a cat", options);
Console.WriteLine($"{reply.Usage!.CachedInputTokenCount} of {reply.Usage.InputTokenCount} prompt tokens came from the cache");
var fork = conversation.Fork();   // a copy that shares nothing mutable
conversation.RewindTo(2);         // forget from the third message on; the cache keeps the first two
await foreach (var update in client.GetStreamingResponseAsync("Tell me about a dog", options))
    Console.Write(update.Text);
fork.Release();                   // frees its cache now
    }
    // ---- README example ends ----
#pragma warning restore xUnit1051

    [Fact]
    public async Task ReadmeExamplesRun()
    {
        Example(TestPaths.Model("stories260K.gguf"));
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        EngineExample(model);
        ChatExample(model);
        await ChatClientExample(model);
    }

    [Fact]
    public void ReadmeExamplesAreTheCodeAbove()
    {
        // Every ```csharp block of the README, less its using directives and the line that names the model file.
        string readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var readmeBlocks = new List<List<string>>();
        for (int start = readme.IndexOf("```csharp", StringComparison.Ordinal); start >= 0; start = readme.IndexOf("```csharp", start + 9, StringComparison.Ordinal))
        {
            int end = readme.IndexOf("```", start + 9, StringComparison.Ordinal);
            readmeBlocks.Add(Lines(readme[(start + 9)..end])
                .Where(l => !l.StartsWith("using KvSharp", StringComparison.Ordinal) && !l.StartsWith("using Microsoft.", StringComparison.Ordinal)
                    && !l.StartsWith("string modelPath", StringComparison.Ordinal)).ToList());
        }

        string source = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "ReadmeExampleTests.cs"));
        var copies = new List<List<string>>();
        // Markers split in two so these lines do not match themselves.
        const string begins = "// ---- README example " + "begins", ends = "    }\n    // ---- README example " + "ends";
        for (int at = source.IndexOf(begins, StringComparison.Ordinal); at >= 0; at = source.IndexOf(begins, at + 1, StringComparison.Ordinal))
        {
            int from = source.IndexOf("    {\n", at, StringComparison.Ordinal) + 6;
            int to = source.IndexOf(ends, from, StringComparison.Ordinal);
            copies.Add(Lines(source[from..to]));
        }
        Assert.Equal(readmeBlocks, copies);
    }

    private static List<string> Lines(string text) => text.Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0).ToList();
}
