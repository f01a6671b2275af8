using System.Diagnostics;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// What scoring a prompt costs (EngineRequest.PromptLogprobs: every position's logits, then each row's log-softmax and
/// top k), against the same prompt computed for its first token only, in one process, the two alternated round by round
/// on one engine without prefix caching (so neither is a hit). Also times the log-softmax and top-k alone over the same
/// number of rows, the part of the difference that is not the classifier.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- score-prompt 9 2 512 1 Q8_0
/// </code>
/// (rounds, threads, prompt tokens, alternatives per token, weight type; a last argument names another synthetic shape.)
/// </summary>
internal static class PromptScoringAlternation
{
    public static void Run(string[] args)
    {
        int rounds = int.Parse(args[1]), threads = int.Parse(args[2]), length = int.Parse(args[3]), top = int.Parse(args[4]);
        var type = args.Length > 5 ? Enum.Parse<GgmlType>(args[5]) : GgmlType.Q8_0;
        var shape = args.Length > 6 ? SyntheticShape.Parse(args[6]) : SyntheticShape.Small;
        using var model = LlmModel.Load(SyntheticModelBuilder.GetOrCreate(shape, type), new ModelLoadOptions { Threads = threads });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = length + 16, PrefixCaching = false });
        var rng = new Random(7);
        int[] prompt = [.. Enumerable.Range(0, length).Select(_ => rng.Next(3, model.Config.VocabSize))];
        double Time(int? scored)
        {
            var clock = Stopwatch.StartNew();
            var handle = engine.Submit(new EngineRequest { PromptTokens = prompt, Options = new GenerationOptions { MaxTokens = 1 }, PromptLogprobs = scored });
            engine.RunUntilIdle();
            if (handle.Status != RequestStatus.Finished) throw new InvalidOperationException($"{handle.Status}: {handle.Error}");
            return clock.Elapsed.TotalMilliseconds;
        }
        // The log-softmax and top k alone, over as many rows of random logits as the prompt has positions.
        var rows = new float[Math.Min(length, 64) * model.Config.VocabSize];
        foreach (ref float l in rows.AsSpan()) l = (float)(rng.NextDouble() * 20 - 10);
        double Extract()
        {
            var clock = Stopwatch.StartNew();
            int vocab = model.Config.VocabSize, count = rows.Length / vocab;
            for (int p = 0; p < length; p++) TokenLogprobs.From(rows.AsSpan(p % count * vocab, vocab), p % vocab, top);
            return clock.Elapsed.TotalMilliseconds;
        }
        Time(null);
        Time(top);
        var plain = new List<double>();
        var scored = new List<double>();
        var extract = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            // Alternate which goes first, so a drift within a round favours neither.
            if (r % 2 == 0) { plain.Add(Time(null)); scored.Add(Time(top)); }
            else { scored.Add(Time(top)); plain.Add(Time(null)); }
            extract.Add(Extract());
        }
        static double Median(List<double> v) => v.Order().ElementAt(v.Count / 2);
        Console.WriteLine($"{shape.Name} {type}, {length}-token prompt, {threads} threads, top {top}, {rounds} rounds (medians):");
        Console.WriteLine($"  first token only: {Median(plain):F1} ms ({length / Median(plain) * 1000:F0} tok/s)");
        Console.WriteLine($"  scored:           {Median(scored):F1} ms ({length / Median(scored) * 1000:F0} tok/s), {Median(scored) / Median(plain):F2}x");
        Console.WriteLine($"  log-softmax + top {top} alone over {length} rows of {model.Config.VocabSize}: {Median(extract):F1} ms");
    }
}
