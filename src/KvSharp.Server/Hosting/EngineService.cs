using System.Collections.Concurrent;
using KvSharp.Engine;
using KvSharp.Server.Continuations;
using KvSharp.Server.Errors;
using KvSharp.Server.Generation;
using KvSharp.Templates;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KvSharp.Server.Hosting;

/// <summary>
/// The one model and the one <see cref="LlmEngine"/> every request goes through: drives the engine's loop for the
/// host's lifetime, admits requests up to running + queue (429 past that), and on shutdown cancels every request
/// still in the engine, so streams end at once and their KV blocks go back to the pool.
/// </summary>
public sealed class EngineService : IHostedService
{
    private readonly ConcurrentDictionary<long, RequestHandle> _live = new();
    private readonly CancellationTokenSource _loopStop = new();
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _log;
    private Task _loop = Task.CompletedTask;
    private int _inFlight;
    private volatile bool _stopping;

    internal EngineService(LlmModel model, LlmEngine engine, ChatTemplate chatTemplate, ServerOptions options, ServerMetrics metrics, IHostApplicationLifetime lifetime,
        ILogger<EngineService> log)
    {
        _log = log;
        Options = options;
        Model = model;
        Engine = engine;
        ChatTemplate = chatTemplate;
        ModelId = options.ModelId ?? Path.GetFileName(model.Path);
        MaxInFlight = (int)Math.Min(int.MaxValue, (long)options.Engine.MaxRunningSequences + options.MaxQueue);
        Metrics = metrics;
        _lifetime = lifetime;
        Continuations = new ContinuationStore(options.ContinuationTokens);
        Responses = new Responses.ResponseStore(options.StoredResponses);
    }

    public ServerOptions Options { get; }
    public LlmModel Model { get; }
    public LlmEngine Engine { get; }
    /// <summary>What turns chat messages into the prompt (the model's own, the fallback, or --chat-template).</summary>
    public ChatTemplate ChatTemplate { get; }
    /// <summary>The model's name in the API.</summary>
    public string ModelId { get; }
    public int ContextLength => Engine.ContextLength;
    /// <summary>Most requests running or queued at once.</summary>
    public int MaxInFlight { get; }
    /// <summary>Requests accepted and not finished.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);
    internal ServerMetrics Metrics { get; }
    /// <summary>Recent completions' token ids, for the requests that continue them.</summary>
    internal ContinuationStore Continuations { get; }
    /// <summary>Stored responses of <c>/v1/responses</c> (<see cref="ServerOptions.StoredResponses"/> of them at most).</summary>
    internal Responses.ResponseStore Responses { get; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Stopping begins before Kestrel waits for open requests to end: cancelling them first makes that wait short.
        _lifetime.ApplicationStopping.Register(BeginStopping);
        if (!Options.ManualEngineSteps) _loop = Task.Run(RunLoopAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task RunLoopAsync()
    {
        try
        {
            await Engine.RunAsync(_loopStop.Token);
        }
        catch (OperationCanceledException) when (_loopStop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Nothing would generate any more: end what is waiting and stop, rather than accept requests that hang.
            _log.LogCritical(e, "the engine loop failed; stopping the server");
            BeginStopping();
            _lifetime.StopApplication();
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        BeginStopping();
        _loopStop.Cancel();
        await _loop.WaitAsync(cancellationToken);
    }

    private void BeginStopping()
    {
        _stopping = true;
        foreach (var handle in _live.Values) handle.Cancel();
    }

    /// <summary>Submits a request for an HTTP call: 429 when running + queue are full, 503 while shutting down.</summary>
    /// <param name="promptField">The request field the prompt came from, named by a rejection that blames the prompt.</param>
    internal GenerationRun Submit(EngineRequest request, CancellationToken clientGone, string promptField)
    {
        if (_stopping) throw ApiError.ShuttingDown();
        if (Interlocked.Increment(ref _inFlight) > MaxInFlight)
        {
            Interlocked.Decrement(ref _inFlight);
            Metrics.Refused();
            throw ApiError.QueueFull(MaxInFlight);
        }
        var handle = Engine.Submit(request);
        _live[handle.Id] = handle;
        // A shutdown that began between the check above and the line before has already swept _live.
        if (_stopping) handle.Cancel();
        return new GenerationRun(this, handle, clientGone, promptField);
    }

    /// <summary>A request's HTTP call ended: it no longer counts against the queue.</summary>
    internal void Ended(RequestHandle handle, bool clientGone)
    {
        if (!handle.IsDone) handle.Cancel();
        _live.TryRemove(handle.Id, out _);
        Interlocked.Decrement(ref _inFlight);
        // A cancel does not wait for the engine's step in progress, which retires the request as it ends: until then
        // the handle still says running, and the request counts as cancelled.
        Metrics.Ended(handle.IsDone ? handle.Status : RequestStatus.Cancelled, clientGone);
    }
}
