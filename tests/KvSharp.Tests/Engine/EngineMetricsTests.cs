using System.Diagnostics.Metrics;
using KvSharp.Engine;

namespace KvSharp.Tests.Engine;

/// <summary>The engine's instruments are visible to any System.Diagnostics.Metrics listener.</summary>
public class EngineMetricsTests
{
    [Fact]
    public void ListenersSeeKvUsagePrefixHitsAndTokens()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockCount = 32, BlockSize = 4 });
        var longs = new Dictionary<string, long>();
        var doubles = new Dictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, engine.Metrics.Meter)) l.EnableMeasurementEvents(instrument);
        };
        // Counters report increments (sum them); observable gauges report current values (keep the last).
        listener.SetMeasurementEventCallback<long>((i, v, _, _) =>
        {
            lock (longs) longs[i.Name] = i.IsObservable ? v : longs.GetValueOrDefault(i.Name) + v;
        });
        listener.SetMeasurementEventCallback<int>((i, v, _, _) => { lock (longs) longs[i.Name] = v; });
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => { lock (doubles) doubles[i.Name] = v; });
        listener.Start();

        var request = new EngineRequest
        {
            PromptTokens = model.Tokenizer.Encode("Once upon a time, there was a little girl", true, false),
            Options = new GenerationOptions { MaxTokens = 6, StopAtEndOfGeneration = false },
        };
        engine.Submit(request);
        engine.Step();
        listener.RecordObservableInstruments();
        Assert.True(longs["kvsharp.kv.blocks.used"] > 0);
        Assert.Equal(32, longs["kvsharp.kv.blocks.total"]);
        Assert.Equal(1, longs["kvsharp.sequences.running"]);
        engine.RunUntilIdle();
        engine.Submit(request);
        engine.RunUntilIdle();
        listener.RecordObservableInstruments();
        Assert.Equal(0, longs["kvsharp.kv.blocks.used"]);
        Assert.True(longs["kvsharp.kv.blocks.cached"] > 0);
        Assert.Equal(12, longs["kvsharp.tokens.generated"]);
        Assert.True(longs["kvsharp.prefix_cache.hit_tokens"] > 0);
        Assert.True(longs["kvsharp.prefix_cache.queried_tokens"] >= longs["kvsharp.prefix_cache.hit_tokens"]);
        Assert.Equal(0, longs["kvsharp.queue.length"]);
        Assert.True(doubles["kvsharp.tokens_per_second"] > 0);
        Assert.True(doubles["kvsharp.request.time_to_first_token"] > 0);
        Assert.True(doubles["kvsharp.request.inter_token_latency"] > 0);
    }
}
