using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Tests.Models;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Tests.Cache;

/// <summary>
/// The attention prefetch hint (<see cref="IKvStore.Prefetch"/>) is safe at every bound a store can be in — empty,
/// partly written, asked past its length or capacity — and changes nothing it reads. (That it changes no logits is
/// covered by every bit-exact forward-pass test, all of which now run with it.)
/// </summary>
public class KvPrefetchTests
{
    [Theory]
    [InlineData(KvElementType.F32)]
    [InlineData(KvElementType.F16)]
    [InlineData(KvElementType.Q8_0)]
    public void PrefetchIsSafeAtEveryBoundAndChangesNothing(KvElementType type)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        var config = model.Config;
        using var pool = new KvBlockPool(config, 4, 8, elementType: type);
        IKvStore[] stores = [model.CreateCache(KvCacheMode.Contiguous, 40, type), new PagedKvSequence(pool, 40)];
        var keys = Enumerable.Range(0, config.KvDim).Select(i => i * 0.25f).ToArray();
        foreach (var store in stores)
        {
            foreach (int end in new[] { 0, 1, 5, 1000 }) store.Prefetch(config.LayerCount - 1, config.KvHeadCount - 1, end);
            store.Reserve(5);
            for (int p = 0; p < 5; p++) store.Write(0, p, keys, keys);
            store.Commit(5);
            foreach (int end in new[] { 0, 3, 5, 64, 1000 })
                for (int h = 0; h < config.KvHeadCount; h++) store.Prefetch(0, h, end);
        }
        // The contiguous store still holds exactly what was written.
        var contiguous = (KvCache)stores[0];
        var got = new float[config.HeadDim];
        for (int h = 0; h < config.KvHeadCount; h++)
        {
            var want = keys.AsSpan(h * config.HeadDim, config.HeadDim).ToArray();
            if (type == KvElementType.F16) want = want.Select(x => (float)(Half)x).ToArray();
            if (type == KvElementType.Q8_0)
            {
                var (q, d) = (new sbyte[want.Length], new float[want.Length / KvQ8.GroupSize(want.Length)]);
                KvQ8.Quantize(want, q, d, KvQ8.GroupSize(want.Length));
                KvQ8.Dequantize(q, d, KvQ8.GroupSize(want.Length), want);
            }
            contiguous.ReadKey(0, h, 4, got);
            Assert.Equal(want, got);
        }
    }
}
