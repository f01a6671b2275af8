using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Server;
using KvSharp.Server.Inspector;

namespace KvSharp.Cli.Bench;

/// <summary>
/// What the inspector page costs decoding: kvsharp's server in this process decodes one request at a time
/// (--gen-tokens, default 256, through POST /v1/completions), alternately with no inspector open and with a reader of
/// the page's event stream (<c>GET /v1/kv/events?delta=true</c>, every event read and dropped: the server's whole
/// share of the page's cost; a browser's own rendering is not in it). Rounds go ABBA (without, with, with, without,
/// ...) so a host that speeds up or slows down through the run biases neither side; the result is each side's median
/// decode rate and their change, and the median of the rounds' paired changes. Then the cost of one snapshot as the
/// stream pays it (<c>Inspect()</c>, serialising it whole and as a delta) is timed between the steps of an engine.
/// With --browser, the "with" side is the page itself open in that headless browser (started for each such
/// completion, once the page's stream is live and it has settled, and killed after), so the browser's rendering on the
/// same cores is in the cost too, and the browser's own CPU time while the clock ran is reported beside it.
/// </summary>
internal static class InspectorScenario
{
    public const int DefaultTokens = 256, DefaultRounds = 8, SnapshotSamples = 200, CostSequences = 4;
    private const string Prompt = "Once upon a time";
    /// <summary>Room left for the prompt's tokens: a byte-level vocabulary makes one of each of its 16 characters.</summary>
    private const int PromptRoom = 32;
    /// <summary>How long a browser may take to open the page's stream, and how long it settles after (its start-up work).</summary>
    private static readonly TimeSpan PageOpenDeadline = TimeSpan.FromSeconds(30), PageSettle = TimeSpan.FromSeconds(2);

    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        int tokens = s.GenTokens ?? DefaultTokens, rounds = s.Repetitions ?? DefaultRounds;
        info.CheckFits(tokens + PromptRoom, "--gen-tokens + a short prompt");
        var engineOptions = EngineBench.Options(s, info.Model.Config, info.ContextLength, maxRunning: 4);
        EngineBench.WarmUp(s, info.Model, log, Math.Min(info.ContextLength, 256));
        var result = info.Describe("inspector");
        Task.Run(async () =>
        {
            await using var server = KvSharpServer.Create(info.Model, new ServerOptions { Port = 0, Engine = engineOptions, InspectorInterval = Interval(s) });
            await server.StartAsync();
            using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
            log.Line($"serving on {server.BaseAddress}; snapshots at most every {server.Options.InspectorInterval.TotalMilliseconds} ms" +
                     (s.Browser is { } browser ? $"; the page open in {browser}" : ""));
            var inspector = new Inspector(http, server, s.Browser);
            // The server's own paths warm up too: a completion with and without a reader.
            await inspector.DecodeAsync(Math.Min(tokens, 32), open: false);
            await inspector.DecodeAsync(Math.Min(tokens, 32), open: true);

            var without = new List<double>();
            var with = new List<double>();
            var changes = new List<double>();
            var stream = new List<StreamLoad>();
            for (int round = 0; round < rounds; round++)
            {
                log.Progress($"round {round + 1} of {rounds}");
                // ABBA: even rounds without first, odd rounds with first.
                double a = 0, b = 0;
                foreach (bool open in round % 2 == 0 ? new[] { false, true } : [true, false])
                {
                    var (rate, load) = await inspector.DecodeAsync(tokens, open);
                    if (open) { b = rate; with.Add(rate); stream.Add(load!); }
                    else { a = rate; without.Add(rate); }
                }
                changes.Add(b / a - 1);
            }
            log.EndProgress();
            var cost = MeasureSnapshots(info, engineOptions, tokens, log);

            double medianWithout = BenchRunner.Median(without), medianWith = BenchRunner.Median(with);
            var t = new BenchTable("inspector", "decode tok/s (median)", "rounds");
            t.Add("none", $"{medianWithout:F1}", string.Join(", ", without.Select(x => x.ToString("F1"))));
            string opened = s.Browser != null ? "page" : "stream";
            t.Add(s.Browser != null ? $"the page in {Path.GetFileName(s.Browser)}" : "event stream", $"{medianWith:F1}", string.Join(", ", with.Select(x => x.ToString("F1"))));
            table.WriteLine();
            t.Write(table);
            table.WriteLine($"change with the {opened}: {100 * (medianWith / medianWithout - 1):+0.0;-0.0}% (medians); median of the rounds' paired changes {100 * BenchRunner.Median(changes):+0.0;-0.0}%");
            var browserCpu = stream.Select(l => l.BrowserCpuMsPerSecond).OfType<double>().ToList();
            if (s.Browser == null)
                table.WriteLine($"stream: {BenchRunner.Median(stream.Select(l => l.EventsPerSecond).ToList()):F1} events/s, {BenchRunner.Median(stream.Select(l => l.BytesPerEvent).ToList()):F0} bytes each (median)");
            else if (browserCpu.Count > 0)
                table.WriteLine($"the browser's own CPU time while decoding: {BenchRunner.Median(browserCpu):F1} ms a second (median; {string.Join(", ", browserCpu.Select(x => x.ToString("F1")))})");
            table.WriteLine($"one snapshot ({CostSequences} sequences decoding): Inspect() {cost.InspectUs:F0} µs, Inspect() + whole and delta JSON {cost.TakeUs:F0} µs, " +
                            $"a step {cost.StepUs:F0} µs (medians of {SnapshotSamples}); {cost.FullBytes} bytes whole, {cost.DeltaBytes} bytes as a delta");

            result["gen_tokens"] = tokens;
            result["rounds"] = rounds;
            result["order"] = "ABBA";
            result["inspector_interval_ms"] = server.Options.InspectorInterval.TotalMilliseconds;
            result["block_count"] = server.Engine.Pool.BlockCount;
            result["decode_tps_without"] = new JsonArray([.. without.Select(x => (JsonNode)x)]);
            result["with"] = opened;
            if (s.Browser != null) result["browser"] = s.Browser;
            result[$"decode_tps_with_{opened}"] = new JsonArray([.. with.Select(x => (JsonNode)x)]);
            result["median_tps_without"] = medianWithout;
            result[$"median_tps_with_{opened}"] = medianWith;
            result["median_change"] = medianWith / medianWithout - 1;
            result["median_paired_change"] = BenchRunner.Median(changes);
            if (s.Browser == null)
            {
                result["stream_events_per_second"] = BenchRunner.Median(stream.Select(l => l.EventsPerSecond).ToList());
                result["stream_bytes_per_event"] = BenchRunner.Median(stream.Select(l => l.BytesPerEvent).ToList());
            }
            else
            {
                result["browser_cpu_ms_per_s"] = new JsonArray([.. browserCpu.Select(x => (JsonNode)x)]);
                if (browserCpu.Count > 0) result["median_browser_cpu_ms_per_s"] = BenchRunner.Median(browserCpu);
            }
            result["snapshot_inspect_us"] = cost.InspectUs;
            result["snapshot_inspect_and_json_us"] = cost.TakeUs;
            result["snapshot_step_us"] = cost.StepUs;
            result["snapshot_sequences"] = CostSequences;
            result["snapshot_full_bytes"] = cost.FullBytes;
            result["snapshot_delta_bytes"] = cost.DeltaBytes;
        }).GetAwaiter().GetResult();
        return result;
    }

    /// <summary>The server's shortest time between two snapshots: --inspector-interval-ms, else the server's default.</summary>
    private static TimeSpan Interval(BenchSettings s) =>
        s.InspectorIntervalMs is int ms ? TimeSpan.FromMilliseconds(ms) : new ServerOptions().InspectorInterval;

    /// <summary>Decodes one completion at a time through the server, with the inspector open or not.</summary>
    /// <param name="browser">The executable that opens the page (--browser); null: a reader of the event stream stands in for the page.</param>
    private sealed class Inspector(HttpClient http, KvSharpServer server, string? browser)
    {
        /// <summary>
        /// One completion's generated tokens per second (a five-token prompt: its prefill is one short step), with or
        /// without the inspector open; when open, what it received or used while the clock ran.
        /// </summary>
        public async Task<(double Rate, StreamLoad? Load)> DecodeAsync(int tokens, bool open)
        {
            using var stop = new CancellationTokenSource();
            var load = new StreamLoad();
            Task? reading = null;
            using var page = open && browser != null ? await OpenPageAsync(browser) : null;
            if (open && page == null)
            {
                var first = new TaskCompletionSource();
                reading = ReadEventsAsync(http, load, first, stop.Token);
                await first.Task; // the stream is live (its first, whole snapshot arrived) before the clock starts
            }
            var body = new JsonObject { ["prompt"] = Prompt, ["max_tokens"] = tokens, ["ignore_eos"] = true, ["temperature"] = 0 };
            var cpuBefore = page?.CpuTime();
            long start = Stopwatch.GetTimestamp();
            load.Start();
            using var response = await http.PostAsJsonAsync("/v1/completions", body);
            var json = JsonNode.Parse(await response.Content.ReadAsStringAsync());
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            load.Stop();
            if (page?.CpuTime() is { } cpuAfter && cpuBefore is { } before) load.BrowserCpuMsPerSecond = (cpuAfter - before).TotalMilliseconds / seconds;
            if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"the benchmark's completion failed: HTTP {(int)response.StatusCode} {json?.ToJsonString()}");
            if (page is { HasExited: true }) throw new InvalidOperationException($"--browser {browser}: the browser exited while the page was being measured");
            int generated = json!["usage"]!["completion_tokens"]!.GetValue<int>();
            await stop.CancelAsync();
            if (reading != null) await reading;
            return (generated / seconds, open ? load : null);
        }

        /// <summary>Opens the page in the browser and waits until its stream is live and the browser has settled.</summary>
        private async Task<HeadlessBrowser> OpenPageAsync(string executable)
        {
            var feed = server.InspectorFeed;
            var page = HeadlessBrowser.Open(executable, server.BaseAddress);
            try
            {
                long start = Stopwatch.GetTimestamp();
                while (feed.Readers == 0)
                {
                    if (page.HasExited) throw new InvalidOperationException($"--browser {executable}: the browser exited before the page opened its event stream");
                    if (Stopwatch.GetElapsedTime(start) > PageOpenDeadline)
                        throw new InvalidOperationException($"--browser {executable}: the page did not open its event stream within {PageOpenDeadline.TotalSeconds} s");
                    await Task.Delay(50);
                }
                await Task.Delay(PageSettle);
                return page;
            }
            catch
            {
                page.Dispose();
                throw;
            }
        }
    }

    /// <summary>Reads the page's event stream, counting events and bytes, until cancelled.</summary>
    private static async Task ReadEventsAsync(HttpClient http, StreamLoad load, TaskCompletionSource first, CancellationToken cancellation)
    {
        try
        {
            using var response = await http.GetAsync(InspectorEndpoints.EventsPath + "?delta=true", HttpCompletionOption.ResponseHeadersRead, cancellation);
            response.EnsureSuccessStatusCode();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellation));
            while (await reader.ReadLineAsync(cancellation) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                first.TrySetResult();
                load.Event(line.Length);
            }
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            first.TrySetException(e);
            throw;
        }
    }

    private sealed record SnapshotCost(double InspectUs, double TakeUs, double StepUs, int FullBytes, int DeltaBytes);

    /// <summary>
    /// Times snapshots between the steps of an engine of the same options decoding <see cref="CostSequences"/>
    /// requests (two pairs with a prompt each, so blocks are shared and prefixes hit), stepped here: a snapshot of the
    /// server's own engine would first wait for the running step to release the lock, which is not its cost.
    /// </summary>
    private static SnapshotCost MeasureSnapshots(BenchModelInfo info, EngineOptions options, int tokens, BenchLog log)
    {
        using var engine = new LlmEngine(info.Model, options);
        var feed = new SnapshotFeed(engine, new ServerOptions().InspectorInterval);
        var requests = Enumerable.Range(0, CostSequences).Select(i => EngineBench.Request(info.Model, 16, tokens, seed: (ulong)(1 + i % 2))).ToList();
        var inspect = new List<double>();
        var take = new List<double>();
        var step = new List<double>();
        var deltas = new List<double>();
        int full = 0;
        for (int i = 0; i < SnapshotSamples; i++)
        {
            log.Progress($"snapshot cost: {i + 1} of {SnapshotSamples}", force: false);
            if (engine.RunningCount + engine.WaitingCount == 0) foreach (var r in requests) engine.Submit(r);
            long t0 = Stopwatch.GetTimestamp();
            engine.Step();
            step.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
            long t1 = Stopwatch.GetTimestamp();
            engine.Inspect();
            inspect.Add(Stopwatch.GetElapsedTime(t1).TotalMicroseconds);
            long t2 = Stopwatch.GetTimestamp();
            var snapshot = feed.Take(t2);
            take.Add(Stopwatch.GetElapsedTime(t2).TotalMicroseconds);
            full = snapshot.Json.Length;
            if (snapshot.Delta is { } delta) deltas.Add(delta.Length);
        }
        log.EndProgress();
        return new SnapshotCost(BenchRunner.Median(inspect), BenchRunner.Median(take), BenchRunner.Median(step), full, deltas.Count > 0 ? (int)BenchRunner.Median(deltas) : 0);
    }

    /// <summary>Events and bytes a stream reader received while the clock ran.</summary>
    private sealed class StreamLoad
    {
        private long _events, _bytes, _start, _stop;
        public void Start() => Interlocked.Exchange(ref _start, Stopwatch.GetTimestamp());
        public void Stop() => Interlocked.Exchange(ref _stop, Stopwatch.GetTimestamp());

        public void Event(int bytes)
        {
            if (Interlocked.Read(ref _start) == 0 || Interlocked.Read(ref _stop) != 0) return;
            Interlocked.Increment(ref _events);
            Interlocked.Add(ref _bytes, bytes);
        }

        /// <summary>With --browser: the browser's CPU time (all its processes) per second of the completion.</summary>
        public double? BrowserCpuMsPerSecond { get; set; }

        public double EventsPerSecond => _events / Stopwatch.GetElapsedTime(_start, _stop).TotalSeconds;
        public double BytesPerEvent => _events == 0 ? 0 : (double)_bytes / _events;
    }
}
