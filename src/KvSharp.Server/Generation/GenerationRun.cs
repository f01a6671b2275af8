using System.Text;
using System.Text.Json;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Server.Errors;
using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
using Microsoft.AspNetCore.Http;

namespace KvSharp.Server.Generation;

/// <summary>Everything a non-streaming response needs: each choice's text, finish reason and (if asked for) token logprobs, and the usage.</summary>
internal sealed record GenerationResult(string[] Texts, string[] FinishReasons, Usage Usage, List<TokenLogprobs>[]? Logprobs);

/// <summary>
/// One engine request on behalf of one HTTP call: cancelled the moment its client disconnects (without waiting for
/// the engine: it frees the blocks as its step in progress ends, or at once between steps), read whole or streamed
/// as server-sent events, and released from the queue when disposed.
/// </summary>
internal sealed class GenerationRun : IDisposable
{
    private readonly EngineService _service;
    private readonly CancellationToken _clientGone;
    private readonly CancellationTokenRegistration _cancelOnClientGone;
    private readonly string _promptField;

    /// <param name="promptField">The request field the prompt came from ("messages", "prompt"), named by a rejection that blames it.</param>
    public GenerationRun(EngineService service, RequestHandle handle, CancellationToken clientGone, string promptField)
    {
        _service = service;
        _promptField = promptField;
        Handle = handle;
        _clientGone = clientGone;
        _cancelOnClientGone = clientGone.Register(static h => ((RequestHandle)h!).Cancel(), handle);
    }

    public RequestHandle Handle { get; }

    /// <summary>Runs once the request has finished, before the last of the response is written (so a client that reads it whole sees what it did).</summary>
    public Action? Finished { get; set; }

    /// <summary>Waits for every choice to finish.</summary>
    public async Task<GenerationResult> CompleteAsync()
    {
        await Handle.Completion;
        ThrowUnlessFinished();
        Finished?.Invoke();
        // Every token is in the (completed) stream; -1 marks text flushed at the end, not a token.
        int generated = 0;
        var logprobs = WantsLogprobs ? NewLists<TokenLogprobs>() : null;
        while (Handle.Stream.TryRead(out var token))
        {
            if (token.TokenId >= 0) generated++;
            if (token.Logprobs != null) logprobs![token.Sample].Add(token.Logprobs);
        }
        return new GenerationResult(Handle.OutputText, Array.ConvertAll(Handle.FinishReasons, OpenAiFinishReason), UsageOf(generated), logprobs);
    }

    private bool WantsLogprobs => Handle.Request.Options.TopLogprobs != null;

    private List<T>[] NewLists<T>()
    {
        var lists = new List<T>[Handle.Request.SampleCount];
        for (int i = 0; i < lists.Length; i++) lists[i] = [];
        return lists;
    }

    /// <summary>
    /// The ending every generating endpoint shares: streamed chunks in <paramref name="format"/>'s shape when the
    /// request asked to stream, else the whole result, written by <paramref name="writeWhole"/> in the endpoint's shape.
    /// </summary>
    public async Task RespondAsync(HttpResponse response, IChunkFormat format, bool stream, bool includeUsage,
        Func<GenerationResult, Task> writeWhole)
    {
        if (stream) await StreamAsync(response, format, includeUsage);
        else await writeWhole(await CompleteAsync());
    }

    /// <summary>
    /// Streams the choices' text as it is generated (whatever arrived since the last write, one chunk per choice),
    /// then a finish chunk per choice, the usage if asked, and <c>data: [DONE]</c>. A request the engine refused
    /// outright still gets a plain 400, since nothing has been sent yet.
    /// </summary>
    public Task StreamAsync(HttpResponse response, IChunkFormat format, bool includeUsage) => StreamAllAsync(response, [(this, format)], includeUsage);

    /// <summary>
    /// <see cref="StreamAsync"/> for the runs of one HTTP call (a completion of several prompts), one after another in
    /// one event stream, each in its format (which numbers its choices); the usage, if asked, is theirs together. All
    /// run at once in the engine: a later run's tokens wait in its stream until the ones before it have gone out. A
    /// run that fails ends the stream with its error.
    /// </summary>
    public static async Task StreamAllAsync(HttpResponse response, IReadOnlyList<(GenerationRun Run, IChunkFormat Format)> runs, bool includeUsage)
    {
        foreach (var (run, _) in runs)
            if (run.Handle.Status == RequestStatus.Rejected) run.ThrowUnlessFinished();
        var clientGone = runs[0].Run._clientGone;
        ServerSentEvents.Begin(response);
        await response.StartAsync(clientGone);
        var body = response.BodyWriter;
        // The headers go now, not with the first token: a request waiting for a slot is already accepted.
        foreach (byte[] chunk in runs[0].Format.Start()) ServerSentEvents.Write(body, chunk);
        await body.FlushAsync(clientGone);
        Usage? total = null;
        foreach (var (run, format) in runs)
        {
            // A run that failed has sent its error: nothing of the others, and no usage, follows it.
            if (await run.StreamChoicesAsync(body, format) is not { } usage)
            {
                includeUsage = false;
                break;
            }
            total = total == null ? usage : total + usage;
        }
        if (includeUsage)
            foreach (byte[] chunk in runs[^1].Format.Usage(total!)) ServerSentEvents.Write(body, chunk);
        if (runs[^1].Format.EndsWithDone) ServerSentEvents.WriteDone(body);
        await body.FlushAsync(clientGone);
    }

    /// <summary>This run's chunks up to its choices' finish chunks; its usage, or null when it failed (an error event went out instead).</summary>
    private async Task<Usage?> StreamChoicesAsync(System.IO.Pipelines.PipeWriter body, IChunkFormat format)
    {
        int choices = Handle.Request.SampleCount, generated = 0;
        var opened = new bool[choices];
        var pending = new StringBuilder[choices];
        for (int i = 0; i < choices; i++) pending[i] = new StringBuilder();
        var logprobs = WantsLogprobs ? NewLists<TokenLogprobs>() : null;
        var reader = Handle.Stream;
        while (await reader.WaitToReadAsync(_clientGone))
        {
            while (reader.TryRead(out var token))
            {
                pending[token.Sample].Append(token.Text);
                if (token.TokenId >= 0)
                {
                    generated++;
                    pending[token.Sample].Append(format.Generated(token.Sample, token.TokenId));
                }
                if (token.Logprobs != null) logprobs![token.Sample].Add(token.Logprobs);
            }
            for (int i = 0; i < choices; i++)
            {
                // A token in the middle of a character has no text yet, but its logprobs still go out.
                if (pending[i].Length == 0 && (logprobs == null || logprobs[i].Count == 0)) continue;
                Open(body, format, opened, i);
                foreach (byte[] chunk in format.Text(i, pending[i].ToString(), logprobs?[i])) ServerSentEvents.Write(body, chunk);
                pending[i].Clear();
                logprobs?[i].Clear();
            }
            await body.FlushAsync(_clientGone);
        }
        await Handle.Completion;
        if (Handle.Status != RequestStatus.Finished)
        {
            _clientGone.ThrowIfCancellationRequested();
            foreach (byte[] chunk in format.Error(Failure())) ServerSentEvents.Write(body, chunk);
            return null;
        }
        Finished?.Invoke();
        for (int i = 0; i < choices; i++)
        {
            Open(body, format, opened, i);
            foreach (byte[] chunk in format.Finish(i, OpenAiFinishReason(Handle.FinishReasons[i])))
                ServerSentEvents.Write(body, chunk);
        }
        return UsageOf(generated);
    }

    /// <summary>A choice's opening chunks (<see cref="IChunkFormat.Opening"/>), once, ahead of its first other chunk.</summary>
    private static void Open(System.IO.Pipelines.PipeWriter body, IChunkFormat format, bool[] opened, int choice)
    {
        if (opened[choice]) return;
        opened[choice] = true;
        foreach (byte[] chunk in format.Opening(choice)) ServerSentEvents.Write(body, chunk);
    }

    private Usage UsageOf(int generated) => Usage.Of(Handle.Request.PromptTokens.Count, generated, Handle.CachedPromptTokens);

    private void ThrowUnlessFinished()
    {
        if (Handle.Status == RequestStatus.Finished) return;
        _clientGone.ThrowIfCancellationRequested();
        throw Failure();
    }

    /// <summary>Why a request that did not finish ended, as the client should see it.</summary>
    private ApiError Failure() => Handle.Status switch
    {
        RequestStatus.Rejected => new ApiError(400, Handle.Error ?? "the engine refused the request", ApiError.InvalidRequest, RejectedField(), "request_rejected"),
        RequestStatus.Failed => new ApiError(500, $"the model could not compute this request: {Handle.Error}", "server_error", null, "model_error"),
        _ => ApiError.ShuttingDown(), // cancelled, and not by its client: the server is stopping
    };

    /// <summary>The field a rejection blames (too long for the KV budget: the prompt's, or max_tokens), or null.</summary>
    private string? RejectedField() => Handle.RejectedPart switch
    {
        RequestPart.Prompt => _promptField,
        RequestPart.MaxTokens => "max_tokens",
        _ => null,
    };

    public static string OpenAiFinishReason(FinishReason reason) => reason == FinishReason.Stop ? "stop" : "length";

    public void Dispose()
    {
        _cancelOnClientGone.Dispose();
        _service.Ended(Handle, _clientGone.IsCancellationRequested);
    }
}
