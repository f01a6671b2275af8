using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLama;
using LLama.Common;
using LLama.Native;

// `kvsharp bench --scenario speed` and `--scenario concurrency`, measured the same way on LLamaSharp (llama.cpp), so one
// GGUF can be compared side by side. Usage (from the repository root):
//   dotnet run -c Release --project bench/KvSharp.LlamaSharpPeer -- --model FILE.gguf [--threads N] [--kv-type f32|f16]
//       [--prompt-tokens 128] [--gen-tokens 64] [--repetitions 5] [--warmup 3] [--concurrency 1,4,16] [--json FILE]
//       [--avx avx2|avx512] (which of LLamaSharp's native builds to load, e.g. avx2 to compare as on an AVX2-only CPU)
// Prints a table, then one JSON object with kvsharp bench's speed field names (and a "concurrency" array with the
// concurrency scenario's), "engine": "LLamaSharp 0.30.0" and the CPU.
var options = PeerOptions.Parse(args);
NativeLibraryConfig.All.WithLogCallback((level, message) => { if (level >= LLamaLogLevel.Error) Console.Error.Write(message); });
if (options.Avx is { } avx) NativeLibraryConfig.All.WithAvx(avx);

int maxSeqs = options.Concurrency.Max();
uint context = (uint)Math.Max(options.Prompt + 1, Math.Max(options.Gen + 2, maxSeqs * (32 + options.Gen + 1)));
context = (context + 255) / 256 * 256;
var parameters = new ModelParams(options.Model)
{
    ContextSize = context,
    Threads = options.Threads,
    BatchThreads = options.Threads,
    BatchSize = (uint)Math.Max(512, options.Prompt),
    UBatchSize = (uint)Math.Max(512, options.Prompt),
    SeqMax = (uint)maxSeqs,
    KVUnified = true,
    GpuLayerCount = 0,
    TypeK = options.KvType,
    TypeV = options.KvType,
};
Console.Error.WriteLine($"loading {options.Model}");
using var weights = LLamaWeights.LoadFromFile(parameters);
Console.Error.WriteLine("loaded");
using var ctx = weights.CreateContext(parameters);
var vocab = weights.NativeHandle.Vocab;
int vocabSize = vocab.Count;
int bos = vocab.BOS is LLamaToken b ? (int)b : -1;
var batch = new LLamaBatch();

// Same token ids as kvsharp bench (BenchRunner.Prompt): seeded System.Random over [3, vocab), BOS first.
int[] Prompt(int length, int seed)
{
    var ids = new int[length];
    var rng = new Random(seed);
    int lo = Math.Min(3, vocabSize - 1);
    for (int i = 0; i < length; i++) ids[i] = rng.Next(lo, vocabSize);
    if (bos >= 0) ids[0] = bos;
    return ids;
}

void Decode()
{
    var result = ctx.NativeHandle.Decode(batch);
    if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode returned {result}");
    ctx.NativeHandle.Synchronize();
}

// Greedy sampling (argmax), which kvsharp's decode timing includes too.
int Argmax(int index)
{
    var logits = ctx.NativeHandle.GetLogitsIth(index);
    int best = 0;
    for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
    return best;
}

// pp P: one prefill of P tokens into an empty cache, to the last token's logits.
double Prefill(int[] prompt)
{
    ctx.NativeHandle.MemoryClear(true);
    batch.Clear();
    for (int i = 0; i < prompt.Length; i++) batch.Add((LLamaToken)prompt[i], i, (LLamaSeqId)0, i == prompt.Length - 1);
    var clock = Stopwatch.StartNew();
    Decode();
    Argmax(batch.TokenCount - 1);
    return clock.Elapsed.TotalSeconds;
}

// tg N: after a 1-token prompt, N single-token steps, each sampled greedily.
double Generate(int n)
{
    ctx.NativeHandle.MemoryClear(true);
    batch.Clear();
    batch.Add((LLamaToken)Prompt(1, 7)[0], 0, (LLamaSeqId)0, true);
    Decode();
    int token = Argmax(0);
    var clock = Stopwatch.StartNew();
    for (int i = 0; i < n; i++)
    {
        batch.Clear();
        batch.Add((LLamaToken)token, i + 1, (LLamaSeqId)0, true);
        Decode();
        token = Argmax(0);
    }
    return clock.Elapsed.TotalSeconds;
}

// Concurrency c: c sequences (32-token prompts, seeds 500 + i as kvsharp's scenario) prefilled, then gen steps that
// each decode one token of every sequence in one batch; tokens/s over those steps.
double Batched(int c, int gen)
{
    ctx.NativeHandle.MemoryClear(true);
    var tokens = new int[c];
    for (int s = 0; s < c; s++)
    {
        int[] prompt = Prompt(32, 500 + s);
        batch.Clear();
        for (int i = 0; i < prompt.Length; i++) batch.Add((LLamaToken)prompt[i], i, (LLamaSeqId)s, i == prompt.Length - 1);
        Decode();
        tokens[s] = Argmax(batch.TokenCount - 1);
    }
    var clock = Stopwatch.StartNew();
    for (int step = 0; step < gen; step++)
    {
        batch.Clear();
        for (int s = 0; s < c; s++) batch.Add((LLamaToken)tokens[s], 32 + step, (LLamaSeqId)s, true);
        Decode();
        for (int s = 0; s < c; s++) tokens[s] = Argmax(s);
    }
    return c * gen / clock.Elapsed.TotalSeconds;
}

void WarmUp(Action run)
{
    var clock = Stopwatch.StartNew();
    for (int i = 0; i < 2 || clock.Elapsed.TotalSeconds < options.WarmUp; i++) run();
}

int[] ppPrompt = Prompt(options.Prompt, 7);
Console.Error.WriteLine($"pp{options.Prompt}: warm-up");
WarmUp(() => Prefill(ppPrompt));
var pp = Enumerable.Range(0, options.Repetitions).Select(_ => Prefill(ppPrompt)).ToList();
Console.Error.WriteLine($"tg{options.Gen}: warm-up");
WarmUp(() => Generate(options.Gen));
var tg = Enumerable.Range(0, options.Repetitions).Select(_ => Generate(options.Gen)).ToList();
// Batched decode: round by round over the levels (as kvsharp's concurrency scenario), median per level.
Console.Error.WriteLine($"batched decode at {string.Join(", ", options.Concurrency)} sequences");
WarmUp(() => Batched(maxSeqs, 8));
var rates = options.Concurrency.ToDictionary(c => c, _ => new List<double>());
for (int rep = 0; rep < 3; rep++)
    foreach (int c in options.Concurrency) rates[c].Add(Batched(c, options.Gen));

double Median(List<double> xs)
{
    var s = xs.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

double ppMedian = Median(pp), tgMedian = Median(tg);
double single = Median(rates[options.Concurrency[0]]);
string systemInfo = Marshal.PtrToStringAnsi(NativeApi.llama_print_system_info()) ?? "";
var concurrency = new JsonArray();
foreach (int c in options.Concurrency)
{
    double rate = Median(rates[c]);
    concurrency.Add(new JsonObject
    {
        ["concurrency"] = c,
        ["tokens_per_s"] = rate,
        ["per_sequence_tokens_per_s"] = rate / c,
        ["tokens_per_s_min"] = rates[c].Min(),
        ["tokens_per_s_max"] = rates[c].Max(),
        ["speedup_vs_1"] = rate / single,
    });
}
var json = new JsonObject
{
    ["engine"] = "LLamaSharp 0.30.0",
    ["scenario"] = "speed",
    ["model"] = options.Model,
    ["kv_type"] = options.KvTypeName,
    ["threads"] = options.Threads,
    ["context_length"] = (int)context,
    ["repetitions"] = options.Repetitions,
    ["prompt_tokens"] = options.Prompt,
    ["gen_tokens"] = options.Gen,
    ["prefill_tokens_per_s"] = options.Prompt / ppMedian,
    ["decode_tokens_per_s"] = options.Gen / tgMedian,
    ["ttft_ms"] = ppMedian * 1e3,
    ["total_s"] = ppMedian + tgMedian,
    ["prefill_s_runs"] = new JsonArray(pp.Select(x => (JsonNode?)x).ToArray()),
    ["decode_s_runs"] = new JsonArray(tg.Select(x => (JsonNode?)x).ToArray()),
    ["concurrency"] = concurrency,
    ["llama_system_info"] = systemInfo.Trim(),
    ["native_build"] = options.Avx?.ToString().ToLowerInvariant() ?? "chosen by LLamaSharp for this CPU",
    ["cpu"] = new JsonObject
    {
        ["model"] = CpuModel(),
        ["dotnet"] = string.Join(' ', new[] { ("Avx2", Avx2.IsSupported), ("Fma", Fma.IsSupported), ("AvxVnni", AvxVnni.IsSupported),
            ("Avx512F", Avx512F.IsSupported), ("Avx512BW", Avx512BW.IsSupported) }.Where(f => f.Item2).Select(f => f.Item1)),
    },
};

Console.WriteLine($"LLamaSharp 0.30.0 on {Path.GetFileName(options.Model)}, {options.Threads} threads, {options.KvTypeName} KV");
Console.WriteLine($"llama.cpp: {systemInfo.Trim()}");
Console.WriteLine($"| test | tokens/s (median) | min | max |");
Console.WriteLine($"| pp{options.Prompt} | {options.Prompt / ppMedian:F1} | {options.Prompt / pp.Max():F1} | {options.Prompt / pp.Min():F1} |");
Console.WriteLine($"| tg{options.Gen} | {options.Gen / tgMedian:F1} | {options.Gen / tg.Max():F1} | {options.Gen / tg.Min():F1} |");
foreach (var run in concurrency)
    Console.WriteLine($"| batched x{run!["concurrency"]} | {(double)run["tokens_per_s"]!:F1} | {(double)run["tokens_per_s_min"]!:F1} | {(double)run["tokens_per_s_max"]!:F1} |");
string text = json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
Console.WriteLine(text);
if (options.JsonPath != null) File.WriteAllText(options.JsonPath, text);
return 0;

static string? CpuModel()
{
    if (!File.Exists("/proc/cpuinfo")) return null;
    string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
    return line?[(line.IndexOf(':') + 1)..].Trim();
}
