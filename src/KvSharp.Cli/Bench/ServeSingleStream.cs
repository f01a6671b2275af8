using System.Diagnostics;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Templates;

namespace KvSharp.Cli.Bench;

/// <summary>One stream's decode time per token (the median of the runs), its completion and prompt tokens.</summary>
internal sealed record SingleStream(double? MsPerToken, int Tokens, int PromptTokens)
{
    public static SingleStream Of(List<(double? MsPerToken, int Tokens, int PromptTokens)> runs)
    {
        var timed = runs.Where(r => r.MsPerToken != null).Select(r => r.MsPerToken!.Value).ToList();
        return new SingleStream(timed.Count > 0 ? BenchRunner.Median(timed) : null, runs[^1].Tokens, runs[^1].PromptTokens);
    }
}

/// <summary>
/// What HTTP costs one stream: the same prompt decoded through the server (time between the first and the last
/// content chunk, on the client's clock) and straight on an engine of the same options with the request the chat
/// endpoint builds. The runs alternate, one of each per round, so neither side gets the JIT's cold start or a slow
/// spell of the host alone.
/// </summary>
internal static class ServeSingleStream
{
    public static async Task<(SingleStream Http, SingleStream? InProcess)> MeasureAsync(ServeChatClient chat, InProcessStream? local, JsonArray prompt,
        int maxTokens, ulong seed, int rounds, ServeProgress progress)
    {
        progress.Start("single stream, HTTP and in process", rounds);
        var http = new List<(double?, int, int)>();
        var inProcess = new List<(double?, int, int)>();
        for (int i = 0; i < rounds; i++)
        {
            if (local != null) inProcess.Add(local.Run());
            var r = await chat.ChatAsync(prompt, maxTokens, seed, CancellationToken.None);
            if (!r.Ok) throw new InvalidOperationException($"the single-stream request failed: {r.Error}");
            http.Add((r.DecodeMsPerToken, r.CompletionTokens, r.PromptTokens));
            progress.RequestDone();
        }
        return (SingleStream.Of(http), local != null ? SingleStream.Of(inProcess) : null);
    }
}

/// <summary>One stream straight on its own engine: the prompt and options kvsharp's chat endpoint builds for the same messages.</summary>
internal sealed class InProcessStream : IDisposable
{
    private readonly LlmEngine _engine;
    private readonly EngineRequest _request;

    public InProcessStream(LlmModel model, EngineOptions options, ChatTemplate template, JsonArray prompt, int maxTokens, ulong seed)
    {
        var messages = prompt.Select(m => new ChatMessage(m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>())).ToList();
        _request = new EngineRequest
        {
            PromptTokens = template.Render(messages, addGenerationPrompt: true, model.Tokenizer).Tokenize(model.Tokenizer),
            Options = new GenerationOptions
            {
                MaxTokens = maxTokens,
                Sampling = SamplingOptions.Greedy with { Seed = seed },
                StopStrings = template.StopStrings,
            },
        };
        _engine = new LlmEngine(model, options);
    }

    /// <summary>Decode time per token after the first (null with fewer than two tokens), tokens generated, prompt tokens.</summary>
    public (double? MsPerToken, int Tokens, int PromptTokens) Run()
    {
        var h = _engine.Submit(_request);
        long first = 0;
        while (!h.IsDone)
        {
            _engine.Step();
            if (first == 0 && h.OutputTokens[0].Count > 0) first = Stopwatch.GetTimestamp();
        }
        if (h.Status != RequestStatus.Finished) throw new InvalidOperationException($"the in-process single stream ended as {h.Status}: {h.Error}");
        int generated = h.OutputTokens[0].Count;
        double? perToken = generated > 1 ? Stopwatch.GetElapsedTime(first).TotalMilliseconds / (generated - 1) : null;
        return (perToken, generated, _request.PromptTokens.Count);
    }

    public void Dispose() => _engine.Dispose();
}
