using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Cache;

/// <summary>
/// Every KV element type in the engine: requests batched in one paged pool get, token for token, what each gets alone
/// in a session with a contiguous cache of the same type (rounding and quantizing are per row, so batching and
/// paging change no bit).
/// </summary>
public class KvElementTypeEngineTests
{
    [Theory]
    [InlineData(KvElementType.F32, KvElementType.F32)]
    [InlineData(KvElementType.F16, KvElementType.F16)]
    [InlineData(KvElementType.Q8_0, KvElementType.Q8_0)]
    [InlineData(KvElementType.Q4_0, KvElementType.Q4_0)]
    [InlineData(KvElementType.F16, KvElementType.Q8_0)]
    [InlineData(KvElementType.Q8_0, KvElementType.Q4_0)]
    public void EngineGivesEachRequestItsAloneOutput(KvElementType kv, KvElementType values)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var engine = new LlmEngine(model, new EngineOptions
        {
            ContextLength = 256, BlockCount = 64, BlockSize = 8, KvElementType = kv, ValueElementType = values,
        });
        Assert.Same(KvElementFormat.Of(kv, values), engine.Pool.Format);
        string[] prompts = ["Once upon a time", "Lily saw a big red ball", "The dog ran to the park", "Tom had a little car"];
        var options = new GenerationOptions { MaxTokens = 20, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy };
        var requests = prompts.Select(p => new EngineRequest { PromptTokens = model.Tokenizer.Encode(p, addSpecial: true, parseSpecial: false), Options = options }).ToArray();
        var handles = requests.Select(engine.Submit).ToList();
        engine.RunUntilIdle();
        for (int i = 0; i < requests.Length; i++)
        {
            using var session = model.CreateSession(new SessionOptions { ContextLength = 256, KvElementType = kv, ValueElementType = values });
            session.GenerateTokens(requests[i].PromptTokens, options).ToList();
            Assert.Equal(session.Tokens.Skip(requests[i].PromptTokens.Count), handles[i].OutputTokens[0]);
        }
        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();
    }
}
