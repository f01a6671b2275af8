using KvSharp.Server.Generation;
using KvSharp.Templates;
using KvSharp.Tokenization;

namespace KvSharp.Server.Chat;

/// <summary>
/// A chat request under way (<see cref="ChatCompletionsEndpoint.Start"/>): its run, and how its replies are read, whole
/// (<see cref="Reply"/>) or streamed (<see cref="Chunks"/>): with tools, for calls in the template's syntax (a forced
/// call between its opening and closing); otherwise as text, its thinking apart where the template's model writes it.
/// </summary>
internal sealed class ChatCall(string id, GenerationRun run, ITokenizer tokenizer, ChatTools? tools, ReplySplitting? reasoning, ForcedToolCall? forced) : IDisposable
{
    public string Id => id;
    public GenerationRun Run => run;
    public ReplySplitting? Reasoning => reasoning;

    /// <summary>Choice <paramref name="choice"/>'s whole reply, once it has finished for <paramref name="finishReason"/>.</summary>
    public ChatReply Reply(int choice, string finishReason) => tools == null
        ? ChatReply.Text(run.Handle.OutputText[choice], finishReason, reasoning)
        : ChatReply.Read(tools, tokenizer, run.Handle.OutputTokens[choice], run.Handle.OutputText[choice], finishReason, reasoning, forced);

    /// <summary>
    /// The stream's chunks, shaped by <paramref name="writer"/>. With tools each reply is read whole for its calls once
    /// it ends; a stream shows its text up to where a call could begin as it comes, and the rest with the calls at its end.
    /// </summary>
    public ChatChunks Chunks(IChatChunkWriter writer) => new(writer, tokenizer, run.Handle.Request.SampleCount, tools == null ? reasoning : null,
        tools == null ? null : new ChatChunks.ToolReplies(tools.Syntax, reasoning, forced, tools.MaxCalls, Reply));

    public void Dispose() => run.Dispose();
}
