namespace KvSharp.Templates;

public abstract partial class ToolCallSyntax
{
    /// <summary>
    /// gpt-oss (OpenAI's Harmony format): a call is a commentary message to <c>functions.NAME</c> whose text is the
    /// arguments' JSON (<see cref="HarmonySplitter"/>); the syntax reads the whole reply, so its analysis comes out as
    /// the reasoning and its final message as the content.
    /// </summary>
    private sealed class Harmony : ToolCallSyntax
    {
        public override string Name => "harmony";

        public override ToolCallReply Parse(string reply)
        {
            var read = HarmonySplitter.Split(reply);
            return new ToolCallReply(read.Answer, read.Calls, read.Reasoning);
        }

        /// <summary>
        /// The call's header goes after the prompt's "&lt;|start|&gt;assistant", and the model writes its arguments. The
        /// header holds special tokens, which a lead (text the model writes) cannot: one named tool only.
        /// </summary>
        private protected override ForcedToolCall Force(IReadOnlyList<ToolSignature> tools)
        {
            if (tools.Count > 1)
                throw new ArgumentException("gpt-oss writes special tokens between a tool's name and its arguments: a forced call must name its function " +
                                            "(tool_choice {\"type\": \"function\", \"function\": {\"name\": ...}}), or there must be one tool");
            return NamedArguments("", tools, name => $" to=functions.{name}{HarmonySplitter.Channel}commentary json{HarmonySplitter.Message}", "");
        }
    }
}
