using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// Submissions, cancellations and observers never wait for a step: a step is held at a hook in its middle (before the
/// forward pass) while other threads submit, cancel and read; requests cancelled before the scheduler takes them never
/// compute; many threads submitting and cancelling at once leave every handle completed and every block returned.
/// The waits on events are failure detectors (a deadlock would hang the test), never measurements.
/// </summary>
public class EngineInboxTests
{
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(10);

    private static readonly Lazy<LlmModel> Model = new(() =>
        LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 }));

    private static EngineOptions Options() => new() { ContextLength = 256, BlockCount = 96, BlockSize = 4, MaxStepTokens = 32, MaxRunningSequences = 4 };

    private static EngineRequest Request(string prompt, int maxTokens) => new()
    {
        PromptTokens = Model.Value.Tokenizer.Encode(prompt, addSpecial: true, parseSpecial: false),
        Options = new GenerationOptions { MaxTokens = maxTokens, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy },
    };

    /// <summary>Holds the next step at its hook until <see cref="Release"/>; the hook fires once.</summary>
    private sealed class HeldStep : IDisposable
    {
        private readonly ManualResetEventSlim _entered = new(), _release = new();
        private readonly Task<bool> _step;

        public HeldStep(LlmEngine engine)
        {
            int fired = 0;
            engine.BeforeForward = () =>
            {
                if (Interlocked.Exchange(ref fired, 1) != 0) return;
                _entered.Set();
                _release.Wait();
            };
            _step = Task.Factory.StartNew(engine.Step, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            Assert.True(_entered.Wait(Hang), "the step never reached its hook");
        }

        public bool Release()
        {
            _release.Set();
            Assert.True(_step.Wait(Hang), "the step did not end once released");
            return _step.Result;
        }

        public void Dispose()
        {
            _release.Set();
            _step.Wait(Hang);
        }
    }

    /// <summary>Runs <paramref name="work"/> on another thread and fails if it has not returned while the step is held.</summary>
    private static T WhileHeld<T>(Func<T> work)
    {
        var done = Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.True(done.Wait(Hang), "waited for the step in progress");
        return done.Result;
    }

    [Fact]
    public void SubmitCancelAndObserversReturnWhileAStepRuns()
    {
        var model = Model.Value;
        using var engine = new LlmEngine(model, Options());
        var running = engine.Submit(Request("Once upon a time", maxTokens: 40));
        engine.Step();
        int computed = (int)engine.Metrics.ComputedTokens;
        Assert.Equal(RequestStatus.Running, running.Status);
        var before = engine.Snapshot();
        Assert.Equal((1, 0), (before.Running, before.Waiting));

        RequestHandle late, withdrawn;
        using (var held = new HeldStep(engine))
        {
            (late, withdrawn) = WhileHeld(() =>
            {
                var l = engine.Submit(Request("The dog ran", maxTokens: 6));
                var w = engine.Submit(Request("Lily saw a bird", maxTokens: 6));
                return (l, w);
            });
            // Visible as waiting at once, before any step takes them.
            var during = WhileHeld(engine.Snapshot);
            Assert.Equal((1, 2), (during.Running, during.Waiting));
            Assert.Equal(2, WhileHeld(() => engine.WaitingCount));
            Assert.Equal(1, WhileHeld(() => engine.RunningCount));
            Assert.True(WhileHeld(() => engine.HasWork));
            // Rejection stays synchronous, with its reason.
            var rejected = WhileHeld(() => engine.Submit(new EngineRequest { PromptTokens = [] }));
            Assert.Equal(RequestStatus.Rejected, rejected.Status);
            Assert.Contains("empty", rejected.Error);

            // Cancelled before the scheduler took it: it completes at once, as any cancelled request does.
            WhileHeld(() => { withdrawn.Cancel(); return 0; });
            Assert.Equal(RequestStatus.Cancelled, withdrawn.Status);
            Assert.True(withdrawn.Completion.IsCompleted);
            Assert.Empty(withdrawn.OutputTokens[0]);
            Assert.Equal(1, WhileHeld(() => engine.WaitingCount));

            // Cancelled while the step computes it: the call returns now, the step retires it as it ends.
            WhileHeld(() => { running.Cancel(); return 0; });
            Assert.True(held.Release());
        }
        Assert.Equal(RequestStatus.Cancelled, running.Status);
        Assert.True(running.Completion.IsCompleted);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        Assert.Equal((0, 1), (engine.RunningCount, engine.WaitingCount));
        engine.BeforeForward = null;

        engine.RunUntilIdle();
        Assert.Equal(RequestStatus.Finished, late.Status);
        Assert.Equal(RequestStatus.Cancelled, withdrawn.Status);
        Assert.Empty(withdrawn.OutputTokens[0]);
        // The held step computed the running request's next token; afterwards only the late request ran (its prompt,
        // less what it found cached, then each token it generated but the last).
        Assert.Equal(computed + 1 + late.Request.PromptTokens.Count - late.CachedPromptTokens + late.OutputTokens[0].Count - 1,
            engine.Metrics.ComputedTokens);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        Assert.False(engine.HasWork);
        engine.Pool.Verify();
    }

    [Fact]
    public void RequestCancelledBeforeAnyStepNeverComputes()
    {
        var model = Model.Value;
        using var engine = new LlmEngine(model, Options());
        int free = engine.Pool.AvailableBlocks;
        var h = engine.Submit(Request("Once upon a time", maxTokens: 8));
        Assert.Equal(1, engine.WaitingCount);
        h.Cancel();
        Assert.Equal(RequestStatus.Cancelled, h.Status);
        Assert.True(h.Completion.IsCompleted);
        Assert.True(h.Stream.Completion.IsCompleted);
        Assert.Equal(FinishReason.Stop, h.FinishReasons[0]);
        Assert.Empty(h.OutputTokens[0]);
        Assert.Equal(0, engine.WaitingCount);
        Assert.False(engine.HasWork);
        Assert.False(engine.Step());
        Assert.Equal(0, engine.Metrics.ComputedTokens);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        Assert.Equal(free, engine.Pool.AvailableBlocks);
        engine.Pool.Verify();
    }

    [Fact]
    public void CancelFromInsideTheStepIsRetiredAsTheStepEnds()
    {
        using var engine = new LlmEngine(Model.Value, Options());
        var h = engine.Submit(Request("Once upon a time", maxTokens: 40));
        engine.Step();
        // The step's own thread cancels mid-step: the sequences it works on must not change under it.
        engine.BeforeForward = h.Cancel;
        Assert.True(engine.Step());
        Assert.Equal(RequestStatus.Cancelled, h.Status);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        Assert.False(engine.HasWork);
    }

    [Fact]
    public void InspectShowsRequestsNotTakenYetAsQueued()
    {
        using var engine = new LlmEngine(Model.Value, Options());
        long before = engine.Changes;
        var h = engine.Submit(Request("Once upon a time", maxTokens: 4));
        Assert.NotEqual(before, engine.Changes);
        var detail = engine.Inspect();
        var queued = Assert.Single(detail.Sequences);
        Assert.Equal((h.Id, "queued"), (queued.RequestId, queued.State));
        Assert.Equal(engine.Changes, detail.Changes);
        h.Cancel();
        Assert.Empty(engine.Inspect().Sequences);
    }

    [Fact]
    public async Task TheLoopWakesForEachRequestSubmittedWhileItIdles()
    {
        using var engine = new LlmEngine(Model.Value, Options());
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var loop = Task.Run(() => engine.RunAsync(stop.Token), CancellationToken.None);
        for (int i = 0; i < 20; i++)
        {
            // One at a time, so the loop has run out of work (and sleeps, or is about to) when the next arrives.
            var h = engine.Submit(Request("Once upon a time", maxTokens: 2));
            var done = await Task.WhenAny(h.Completion, Task.Delay(Hang, TestContext.Current.CancellationToken));
            Assert.True(done == h.Completion, $"request {i} was never run: the loop missed its wake-up");
            Assert.Equal(RequestStatus.Finished, h.Status);
        }
        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop);
    }

    [Fact]
    public async Task ConcurrentSubmittersAndCancellersMatchSerialRuns()
    {
        var model = Model.Value;
        string[] prompts = ["Once upon a time", "The dog ran to the park", "Lily saw a big red ball", "Tom had a little car", "One day, a bird", "The sun was hot and"];
        const int threads = 4, perThread = 6;
        var requests = new EngineRequest[threads * perThread];
        // Repeated prompts share prefix blocks; every fifth request forks a second sample; every fourth is cancelled
        // once it has a token, by a thread of its own, so that cancel meets a running sequence: mid-step or between.
        bool CancelledRunning(int i) => i % 4 == 1;
        for (int i = 0; i < requests.Length; i++)
            requests[i] = Request(prompts[i % prompts.Length], maxTokens: CancelledRunning(i) ? 40 : 4 + i % 9) with { SampleCount = i % 5 == 0 ? 2 : 1 };

        using var engine = new LlmEngine(model, Options());
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var loop = Task.Run(() => engine.RunAsync(stop.Token), CancellationToken.None);
        var handles = new RequestHandle[requests.Length];
        var cancellers = new List<Task>();
        var submitters = Enumerable.Range(0, threads).Select(t => Task.Factory.StartNew(() =>
        {
            var rng = new Random(t);
            for (int k = 0; k < perThread; k++)
            {
                int i = t * perThread + k;
                var h = handles[i] = engine.Submit(requests[i]);
                if (CancelledRunning(i))
                {
                    var canceller = Task.Run(async () =>
                    {
                        await h.Stream.WaitToReadAsync(CancellationToken.None);
                        h.Cancel();
                    }, CancellationToken.None);
                    lock (cancellers) cancellers.Add(canceller);
                }
                // The others are cancelled now and then at once: in the inbox, or just taken by a step.
                else if (rng.Next(3) == 0) h.Cancel();
                _ = engine.Snapshot();
                // Now and then let a step end first, so submissions also meet running sequences.
                long steps = engine.Metrics.Steps;
                if (rng.Next(2) == 0) Assert.True(SpinWait.SpinUntil(() => engine.Metrics.Steps > steps || !engine.HasWork, Hang), "no step ran");
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        await Task.WhenAll(submitters);
        var all = Task.WhenAll([.. handles.Select(h => h.Completion), .. cancellers]);
        Assert.Same(all, await Task.WhenAny(all, Task.Delay(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken)));
        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop);

        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();
        Assert.False(engine.HasWork);

        using var serial = new LlmEngine(model, Options());
        for (int i = 0; i < requests.Length; i++)
        {
            var h = handles[i];
            Assert.Contains(h.Status, (RequestStatus[])[RequestStatus.Finished, RequestStatus.Cancelled]);
            var alone = serial.Submit(requests[i]);
            serial.RunUntilIdle();
            for (int sample = 0; sample < h.OutputTokens.Length; sample++)
            {
                // A cancelled request stops anywhere, even before its first token: what it made is where a serial run went.
                if (h.Status == RequestStatus.Finished) Assert.Equal(alone.OutputTokens[sample], h.OutputTokens[sample]);
                else Assert.Equal(alone.OutputTokens[sample].Take(h.OutputTokens[sample].Count), h.OutputTokens[sample]);
            }
        }
    }
}
