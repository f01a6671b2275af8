using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>A thinking model's reply split into reasoning and answer, whole or streamed in pieces cut anywhere (tags included).</summary>
public class ReasoningSplitterTests
{
    [Theory]
    [InlineData("<think>Let me see.</think>\n\nIt is sunny.", false, "Let me see.", "It is sunny.")]
    [InlineData("  \n<think>\nhmm\n</think>Yes", false, "hmm", "Yes")]
    [InlineData("Just an answer, <think> in the middle.", false, null, "Just an answer, <think> in the middle.")]
    [InlineData("reasoning first</think>answer", true, "reasoning first", "answer")]
    [InlineData("<think>never closed", false, "never closed", "")]
    [InlineData("   spaced   ", false, null, "   spaced   ")]
    public void SplitsWholeAndStreamedAlike(string reply, bool startsInside, string? reasoning, string answer)
    {
        Assert.Equal((reasoning, answer), ReasoningSplitter.Split(reply, startsInside));
        // Every way of cutting the reply in two streams the same reasoning and answer (before trimming).
        var (wholeThought, wholeAnswer) = Stream([reply], startsInside);
        for (int cut = 0; cut <= reply.Length; cut++)
            Assert.Equal((wholeThought, wholeAnswer), Stream([reply[..cut], reply[cut..]], startsInside));
        // And one character at a time.
        Assert.Equal((wholeThought, wholeAnswer), Stream([.. reply.Select(c => c.ToString())], startsInside));
    }

    private static (string, string) Stream(string[] pieces, bool startsInside)
    {
        var splitter = new ReasoningSplitter(startsInside);
        string thought = "", answer = "";
        foreach (var piece in pieces)
        {
            var (t, a) = splitter.Append(piece);
            thought += t;
            answer += a;
        }
        var (ft, fa) = splitter.Flush();
        return (thought + ft, answer + fa);
    }

    [Fact]
    public void ItAppliesToTemplatesWithThinkTagsAndToPromptsThatOpenOne()
    {
        Assert.True(ReasoningSplitter.Applies(ChatTemplate.Parse("{# <think> ... </think> #}{{ messages[0].content }}", "t")));
        Assert.False(ReasoningSplitter.Applies(ChatTemplate.BuiltIn("chatml")));
        Assert.True(ReasoningSplitter.PromptOpensThinking("<｜Assistant｜><think>\n"));
        Assert.False(ReasoningSplitter.PromptOpensThinking("<|im_start|>assistant\n"));
    }
}
