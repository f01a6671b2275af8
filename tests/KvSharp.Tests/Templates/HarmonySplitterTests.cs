using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// gpt-oss replies in the Harmony format come apart into reasoning (analysis), answer (final, and commentary to no
/// one) and tool calls (commentary to functions.NAME, the recipient before or after the channel), whole and streamed
/// split at every character, the markers never in either; a reply that does not follow the format is answer.
/// </summary>
public class HarmonySplitterTests
{
    private const string Thought = "<|channel|>analysis<|message|>User asks 2+2. Easy.<|end|>";

    public static TheoryData<string, string?, string, string[]> Replies() => new()
    {
        // reply as generated (after the prompt's "<|start|>assistant"), reasoning, answer, calls as "name arguments"
        { Thought + "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.", "User asks 2+2. Easy.", "2 + 2 = 4.", [] },
        { Thought + "<|start|>assistant<|channel|>final<|message|>4<|return|>", "User asks 2+2. Easy.", "4", [] },
        { "<|channel|>final<|message|>No thinking <here>.", null, "No thinking <here>.", [] },
        { "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}",
            "Need the weather.", "", ["get_weather {\"city\": \"Paris\"}"] },
        { "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Oslo\",\"days\":[1,2]}<|call|>",
            null, "", ["get_weather {\"city\":\"Oslo\",\"days\":[1,2]}"] },
        { " to=functions.now<|channel|>commentary json<|message|>{}", null, "", ["now {}"] },
        { "<|channel|>commentary<|message|>Let me check.<|end|><|start|>assistant to=functions.now<|channel|>commentary json<|message|>{}",
            null, "Let me check.", ["now {}"] },
        // Not the format: all answer, the markers gone.
        { "Hello <world>, 2 < 3 and a<|b.", null, "Hello <world>, 2 < 3 and a<|b.", [] },
        { "Hi <|start|>there<|end|> again<|message|>!", null, "Hi there again!", [] },
        { "<|channel|>analysis<|message|>cut off mid-thought", "cut off mid-thought", "", [] },
        { Thought + "<|start|>assistant<|channel|>fin", "User asks 2+2. Easy.", "", [] },
        { " to=functions.f<|channel|>commentary json<|message|>{not json", null, "{not json", [] },
        { " to=functions.f<|channel|>commentary json<|message|>[1, 2]<|call|>", null, "[1, 2]", [] },
        { "<|start|>", null, "", [] },
        { "", null, "", [] },
    };

    [Theory]
    [MemberData(nameof(Replies))]
    public void WholeReplySplits(string reply, string? reasoning, string answer, string[] calls)
    {
        var read = HarmonySplitter.Split(reply);
        Assert.Equal(reasoning, read.Reasoning);
        Assert.Equal(answer, read.Answer);
        Assert.Equal(calls, read.Calls.Select(c => c.Name + " " + c.Arguments));
        Assert.All(read.Calls, c => Assert.StartsWith("call_", c.Id));
    }

    /// <summary>Any two pieces, at every character boundary, and one character at a time give what the whole reply gives.</summary>
    [Theory]
    [MemberData(nameof(Replies))]
    public void StreamedReplySplitsAsWhole(string reply, string? reasoning, string answer, string[] calls)
    {
        var pieces = Enumerable.Range(0, reply.Length + 1).Select(i => new[] { reply[..i], reply[i..] })
            .Append([.. reply.Select(c => c.ToString())]);
        foreach (var split in pieces)
        {
            var splitter = new HarmonySplitter();
            string thought = "", said = "";
            foreach (string piece in split)
            {
                var (r, a) = splitter.Append(piece);
                AssertNoMarker(r);
                AssertNoMarker(a);
                (thought, said) = (thought + r, said + a);
            }
            var (restThought, restAnswer) = splitter.Flush();
            Assert.Equal(reasoning ?? "", (thought + restThought).Trim());
            Assert.Equal(reasoning != null, splitter.Reasoned);
            Assert.Equal(answer, (said + restAnswer).Trim());
            Assert.Equal(calls, splitter.Calls.Select(c => c.Name + " " + c.Arguments));
        }
    }

    /// <summary>A marker is never given out, not even its start: text that may begin one waits for the next piece.</summary>
    [Fact]
    public void PartialMarkerIsHeldBackUntilWhole()
    {
        var splitter = new HarmonySplitter();
        Assert.Equal(("", ""), splitter.Append("<|chan"));
        Assert.Equal(("", ""), splitter.Append("nel|>analysis<|mess"));
        Assert.Equal(("Hmm", ""), splitter.Append("age|>Hmm<|e"));
        Assert.Equal(("", ""), splitter.Append("nd|><|start|>assistant<|channel|>final<|message|>"));
        Assert.Equal(("", "Yes "), splitter.Append("Yes <"));
        Assert.Equal(("", "<b>"), splitter.Append("b>"));
        Assert.Equal(("", ""), splitter.Append("<|"));
        Assert.Equal(("", "<|"), splitter.Flush());
    }

    [Fact]
    public void AppliesToTemplatesThatWriteChannels()
    {
        Assert.True(HarmonySplitter.Applies(ChatTemplate.Parse("{{ '<|start|>assistant<|channel|>final<|message|>' }}")));
        Assert.False(HarmonySplitter.Applies(ChatTemplate.BuiltIn("chatml")));
    }

    private static void AssertNoMarker(string text)
    {
        foreach (string marker in new[] { "<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|constrain|>", "<|return|>", "<|call|>" })
            Assert.DoesNotContain(marker, text);
    }
}
