using KvSharp.Gguf;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Tokenization;

/// <summary>
/// A vocabulary with gpt-oss's Harmony tokens: <|return|> and <|call|> end generation (the answer, a tool call) and
/// <|end|>, which closes the analysis before the answer, does not; the message markers show in decoded text, so a
/// reply can be read as messages. Elsewhere (Phi-3) <|end|> still ends a turn and stays hidden.
/// </summary>
public class HarmonyVocabularyTests
{
    private static readonly string[] Harmony = ["<|start|>", "<|channel|>", "<|message|>", "<|constrain|>", "<|end|>", "<|return|>", "<|call|>", "<|endoftext|>"];

    private static ITokenizer Vocabulary(params string[] specials)
    {
        // All 256 byte characters, then the special tokens (control), the last of them declared as eos.
        var tokens = Enumerable.Range(0, 256).Select(b => Gpt2ByteMap.Encode((byte)b).ToString()).Concat(specials).ToArray();
        var types = tokens.Select((_, i) => i < 256 ? 1 : 3).ToArray();
        return TokenizerFactory.FromMetadata(new Dictionary<string, GgufValue>
        {
            ["tokenizer.ggml.model"] = GgufValue.Of("gpt2"),
            ["tokenizer.ggml.pre"] = GgufValue.Of("gpt-2"),
            ["tokenizer.ggml.tokens"] = GgufValue.Of(tokens),
            ["tokenizer.ggml.token_type"] = GgufValue.Of(types),
            ["tokenizer.ggml.merges"] = GgufValue.Of(Array.Empty<string>()),
            ["tokenizer.ggml.eos_token_id"] = GgufValue.Of((uint)(tokens.Length - 1)),
        });
    }

    private static int Id(string special) => 256 + Array.IndexOf(Harmony, special);

    [Fact]
    public void ReturnAndCallEndGenerationAndEndDoesNot()
    {
        var tok = Vocabulary(Harmony);
        Assert.True(tok.IsEndOfGeneration(Id("<|return|>")));
        Assert.True(tok.IsEndOfGeneration(Id("<|call|>")));
        Assert.True(tok.IsEndOfGeneration(Id("<|endoftext|>")));
        Assert.False(tok.IsEndOfGeneration(Id("<|end|>")));
        Assert.False(tok.IsEndOfGeneration(Id("<|channel|>")));
    }

    [Fact]
    public void MessageMarkersShowInDecodedTextAndTheEndsDoNot()
    {
        var tok = Vocabulary(Harmony);
        int[] reply = [Id("<|channel|>"), 'a', Id("<|message|>"), 'b', Id("<|end|>"), Id("<|start|>"), 'c', Id("<|constrain|>"), 'd', Id("<|return|>")];
        Assert.Equal("<|channel|>a<|message|>b<|end|><|start|>c<|constrain|>d", tok.Decode(reply));
        Assert.Equal(0, tok.TokenPiece(Id("<|return|>")).Length);
        Assert.Equal(0, tok.TokenPiece(Id("<|call|>")).Length);
    }

    [Fact]
    public void WithoutReturnAndCallEndStillEndsATurnAndStaysHidden()
    {
        var tok = Vocabulary("<|start|>", "<|end|>", "<|endoftext|>");
        Assert.True(tok.IsEndOfGeneration(256 + 1));
        Assert.Equal("a", tok.Decode([256, 'a', 256 + 1]));
    }
}
