using KvSharp.Cache;
using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// The kernel path choice (<see cref="KernelPaths"/>): which path each weight type runs on, and that every path this
/// machine has gives the same bits on real models, so the llama.cpp parity tests (run on the default path) hold on all.
/// </summary>
[Collection(nameof(KernelSwitchCollection))]
public class KernelPathsTests
{
    [Theory]
    [InlineData(GgmlType.Q8_0, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.Q4_0, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.IQ4_NL, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.IQ4_NL, KernelPath.Avx2Vnni, KernelPath.Avx2Vnni)]
    [InlineData(GgmlType.Q5_1, KernelPath.Avx2Vnni, KernelPath.Avx2Vnni)]
    [InlineData(GgmlType.Q5_1, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.Q4_1, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.Q5_0, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.Q2_K, KernelPath.Avx512, KernelPath.Avx2)]
    [InlineData(GgmlType.Q4_K, KernelPath.Avx2Vnni, KernelPath.Avx2Vnni)]
    [InlineData(GgmlType.Q6_K, KernelPath.Avx2Vnni, KernelPath.Avx2Vnni)]
    [InlineData(GgmlType.Q6_K, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.Q4_K, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.Q5_K, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.F32, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.F16, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.F16, KernelPath.Avx2Vnni, KernelPath.Avx2)]
    [InlineData(GgmlType.BF16, KernelPath.Avx512, KernelPath.Avx512)]
    [InlineData(GgmlType.Q8_0, KernelPath.Avx2Vnni, KernelPath.Avx2Vnni)]
    [InlineData(GgmlType.Q4_0, KernelPath.Avx2Vnni, KernelPath.Avx2Vnni)]
    [InlineData(GgmlType.Q6_K, KernelPath.Scalar, KernelPath.Scalar)]
    [InlineData(GgmlType.Q8_0, KernelPath.Avx2, KernelPath.Avx2)]
    public void ACapMapsEachTypeToItsKernels(GgmlType type, KernelPath cap, KernelPath expected)
        => Assert.Equal(expected, KernelPaths.For(type, cap));

    [Fact]
    public void TheDefaultIsTheFastestAvailablePathPerType()
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        Assert.Equal(KernelPath.Avx2, KernelPaths.For(GgmlType.Q3_K, null));
        Assert.Equal(KernelPath.Avx2, KernelPaths.For(GgmlType.F32, null, 1));
        bool vnni = KernelPaths.IsAvailable(KernelPath.Avx2Vnni), avx512 = KernelPaths.IsAvailable(KernelPath.Avx512);
        // Over many tokens: AVX-512 for the types that have kernels there, except Q8_0, which runs VNNI where it can.
        var many = avx512 ? KernelPath.Avx512 : vnni ? KernelPath.Avx2Vnni : KernelPath.Avx2;
        Assert.Equal(many, KernelPaths.For(GgmlType.Q4_0, null));
        Assert.Equal(many, KernelPaths.For(GgmlType.IQ4_NL, null, 64));
        Assert.Equal(avx512 ? KernelPath.Avx512 : vnni ? KernelPath.Avx2Vnni : KernelPath.Avx2, KernelPaths.For(GgmlType.IQ4_NL, null, 1));
        Assert.Equal(vnni ? KernelPath.Avx2Vnni : avx512 ? KernelPath.Avx512 : KernelPath.Avx2, KernelPaths.For(GgmlType.Q8_0, null, 64));
        // The K-quants: AVX-512 over several tokens, their VNNI one-token kernels for decode where VNNI is, else AVX2.
        foreach (var type in new[] { GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K })
        {
            Assert.Equal(many, KernelPaths.For(type, null, 64));
            Assert.Equal(vnni ? KernelPath.Avx2Vnni : KernelPath.Avx2, KernelPaths.For(type, null, 1));
        }
        Assert.Equal(avx512 ? KernelPath.Avx512 : KernelPath.Avx2, KernelPaths.For(GgmlType.F32, null, 64));
        // F16 and BF16: rows widened once and four by four tokens on AVX-512 for prefill. One token: F16 on AVX-512
        // (its widening there takes a third of the instructions), BF16 on AVX2.
        foreach (var type in new[] { GgmlType.F16, GgmlType.BF16 })
            Assert.Equal(avx512 ? KernelPath.Avx512 : KernelPath.Avx2, KernelPaths.For(type, null, 64));
        Assert.Equal(avx512 ? KernelPath.Avx512 : KernelPath.Avx2, KernelPaths.For(GgmlType.F16, null, 1));
        Assert.Equal(KernelPath.Avx2, KernelPaths.For(GgmlType.BF16, null, 1));
        // Q4_1, Q5_0, Q5_1 (Q5_0 and Q5_1: the fallbacks of K-quant files whose rows are not multiples of 256):
        // AVX-512 at every size where it is, else VNNI, else AVX2.
        foreach (var type in new[] { GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1 })
            foreach (int tokens in new[] { 1, 64 })
                Assert.Equal(many, KernelPaths.For(type, null, tokens));
    }

    [Fact]
    public void OneTokenDecodeRunsQ4_0OnAvx512AndQ8_0OnVnniWhereTheyAreAndElseKeepsQ8_0OnAvx2()
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        bool vnni = KernelPaths.IsAvailable(KernelPath.Avx2Vnni), avx512 = KernelPaths.IsAvailable(KernelPath.Avx512);
        Assert.Equal(avx512 ? KernelPath.Avx512 : vnni ? KernelPath.Avx2Vnni : KernelPath.Avx2, KernelPaths.For(GgmlType.Q4_0, null, 1));
        Assert.Equal(vnni ? KernelPath.Avx2Vnni : KernelPath.Avx2, KernelPaths.For(GgmlType.Q8_0, null, 1));
        Assert.Equal(KernelPath.Avx2, KernelPaths.For(GgmlType.Q4_0, KernelPath.Avx2, 1));
        if (avx512)
        {
            Assert.Equal(KernelPath.Avx512, KernelPaths.For(GgmlType.Q8_0, KernelPath.Avx512, 1));
            Assert.Equal("avx512", KernelPaths.Describe(GgmlType.Q4_0));
            Assert.Equal(vnni ? "avx2-vnni" : "avx512 prefill, avx2 decode", KernelPaths.Describe(GgmlType.Q8_0));
        }
        Assert.Equal("avx2", KernelPaths.Describe(GgmlType.Q3_K));
    }

    [Fact]
    public void NamesRoundTripAndABadNameIsAClearError()
    {
        foreach (var path in Enum.GetValues<KernelPath>())
            Assert.Equal(path, KernelPaths.Parse(KernelPaths.Name(path).ToUpperInvariant(), "test"));
        var e = Assert.Throws<ArgumentException>(() => KernelPaths.Parse("sse9", KernelPaths.IsaVariable));
        Assert.Contains("KVSHARP_ISA", e.Message);
        Assert.Contains("sse9", e.Message);
    }

    [Fact]
    public void ForcingAPathRunsItAndRestoresTheChoice()
    {
        var before = KernelPaths.Requested;
        using (KernelPaths.Force(KernelPath.Scalar))
        {
            Assert.Equal(KernelPath.Scalar, KernelPaths.For(GgmlType.Q8_0));
            Assert.False(VecDot.UseAvx2);
        }
        Assert.Equal(before, KernelPaths.Requested);
        foreach (var missing in Enum.GetValues<KernelPath>().Where(p => !KernelPaths.IsAvailable(p)))
            Assert.Throws<PlatformNotSupportedException>(() => KernelPaths.Force(missing));
    }

    /// <summary>
    /// A fixture model's prompt logits, in one prefill and token by token, on every path: all bit-identical (the
    /// default path's are the ones <c>LlamaCppParityTests</c> compares with llama.cpp).
    /// </summary>
    [Theory]
    [InlineData("llama-gqa", "Q8_0")]
    [InlineData("llama-gqa", "Q4_0")]
    [InlineData("llama-gqa", "Q4_K_M")]
    [InlineData("llama-gqa", "F16")]
    [InlineData("llama-gqa", "BF16")]
    public void EveryPathGivesTheSameLogitsOnAFixtureModel(string name, string type)
    {
        var fixture = Fixtures.Get(name, type);
        using var model = LlmModel.Load(fixture.GgufPath, new ModelLoadOptions { Threads = 2 });
        int[] prompt = fixture.PromptIds.Take(24).ToArray();
        int vocab = model.Config.VocabSize;
        float[]? first = null;
        string firstPath = "";
        foreach (var path in KernelPaths.Available)
        {
            using var _ = KernelPaths.Force(path);
            float[] batch = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.F32), allLogits: true);
            var cache = model.CreateCache(KvCacheMode.Static, 64, KvElementType.F32);
            float[] sequential = new float[prompt.Length * vocab];
            for (int i = 0; i < prompt.Length; i++) model.Evaluate(prompt.AsSpan(i, 1), cache).CopyTo(sequential, i * vocab);
            Assert.True(batch.AsSpan().SequenceEqual(sequential), $"{fixture} on {KernelPaths.Name(path)}: prefill and decode differ");
            if (first == null)
            {
                first = batch;
                firstPath = KernelPaths.Name(path);
            }
            else
                Assert.True(first.AsSpan().SequenceEqual(batch), $"{fixture}: {KernelPaths.Name(path)} differs from {firstPath}");
        }
    }
}
