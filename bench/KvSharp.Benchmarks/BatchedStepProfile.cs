using System.Diagnostics;
using KvSharp.Attention;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// Where a batched decode step's time goes, measured in one process without instrumenting the engine: each round
/// times whole steps (<see cref="ForwardPass"/> over S sequences, `small` shape, paged F32 KV, 32-96 positions as in
/// <see cref="BatchedDecodeBenchmarks"/>), then the step's products alone (the same matrices by S tokens of activations,
/// on the same pool), per matrix kind. The rest of the step (attention over the paged KV, norms, rope, SwiGLU, the
/// parallel regions) is the step minus the products. Reported as medians over rounds of each piece's share of its
/// round's step, with the multiply-adds per nanosecond of the products.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- profile-step 30 2 16 Q4_0 heads
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- profile-step 40 2 1 Q4_0 paths avx512 default smollm2-135m
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- profile-step 40 2 1 Q4_0 unpaired
/// </code>
/// (rounds, threads, sequences, weight type; "heads" also times each round's steps with every sequence attending head by
/// head, in turn with the default, and prints the ratio; "paths A B" times each round's steps with every product on
/// kernel path A (KVSHARP_ISA's names) and on B ("default": each type's fastest measured), in turn, after checking
/// that both give the same logits, and the shares are of A's steps (the products alone run the default paths); "unpaired"
/// times each round's steps with the model's paired copies rearranged in place to the plain layout, in turn with the
/// paired one, after checking the logits agree; a last argument names another synthetic shape.)
/// </summary>
internal static class BatchedStepProfile
{
    private const int Prompt = 32, Decoded = 64, StepsPerRound = 8;

    public static void Run(string[] args)
    {
        int rounds = int.Parse(args[1]), threads = int.Parse(args[2]), sequences = int.Parse(args[3]);
        var type = args.Length > 4 ? Enum.Parse<GgmlType>(args[4]) : GgmlType.Q8_0;
        string mode = args.Length > 5 ? args[5] : "";
        int shapeArg = mode == "paths" ? 8 : mode is "heads" or "unpaired" ? 6 : 5;
        var shape = args.Length > shapeArg ? SyntheticShape.Parse(args[shapeArg]) : SyntheticShape.Small;
        using var model = LlmModel.Load(SyntheticModelBuilder.GetOrCreate(shape, type), new ModelLoadOptions { Threads = threads });
        var c = model.Config;
        var forward = model.CreateForwardPass();
        using var pool = new KvBlockPool(c, 16, sequences * ((Prompt + Decoded) / 16 + 1));
        var logits = new float[sequences * c.VocabSize];
        var seqs = new PagedKvSequence[sequences];
        var rng = new Random(500);
        for (int s = 0; s < sequences; s++)
        {
            seqs[s] = new PagedKvSequence(pool, Prompt + Decoded);
            int[] prompt = [.. Enumerable.Range(0, Prompt).Select(_ => rng.Next(3, c.VocabSize))];
            forward.Forward(prompt, seqs[s], logits, allLogits: false);
        }
        BatchSegment[] segments = [.. seqs.Select(s => new BatchSegment(s, 1, LogitsRequest.Last))];
        // "heads": the same step with every store attending head by head (HeadByHead declines TryAttendHeads), in
        // turn with the default, in this process: what attending a decode token's heads together gains.
        bool compareHeads = mode == "heads";
        BatchSegment[] headByHead = [.. seqs.Select(s => new BatchSegment(new HeadByHead(s), 1, LogitsRequest.Last))];
        // "paths A B": the same steps with every product forced onto path A, then B ("default": no path forced).
        bool comparePaths = mode == "paths";
        KernelPath? pathA = comparePaths ? PathArgument(args[6]) : null, pathB = comparePaths ? PathArgument(args[7]) : null;
        // "unpaired": the same steps with the model's paired copies rearranged in place to the plain layout
        // (InterleavedRows.PairedGroups), in turn with the paired layout: the same memory, so the same pages (a second
        // load of the model, on other pages, ran 4-8% slower with the same layout).
        bool compareCopies = mode == "unpaired";
        var pairedCopies = model.Weights.ProductMatrices().Select(m => m.Interleaved).OfType<InterleavedRows>().Where(r => r.PairedGroups).ToArray();
        if (compareCopies && pairedCopies.Length == 0)
            throw new InvalidOperationException($"profile-step unpaired: no {type} copy pairs its groups on this machine (InterleavedRows.PairsGroupsByDefault)");
        int[] tokens = [.. Enumerable.Range(0, sequences).Select(s => 5 + s)];
        int decoded = 0;

        var matMul = new MatMul(model.Pool);
        var w = model.Weights;
        int e = c.EmbeddingDim, f = c.FeedForwardDim;
        var x = new float[sequences * Math.Max(f, c.QueryDim)];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var y0 = new float[sequences * c.VocabSize];
        var y1 = new float[sequences * f];
        var y2 = new float[sequences * c.KvDim];
        string[] names = ["qkv", "attn_output", "gate_up", "down", "output"];
        var l0 = w.Layers[0];
        long[] macs =
        [
            (long)c.LayerCount * (l0.Query.Rows + l0.Key.Rows + l0.Value.Rows) * e,
            (long)c.LayerCount * l0.AttentionOutput.Rows * l0.AttentionOutput.Cols,
            (long)c.LayerCount * (l0.Gate.Rows + l0.Up.Rows) * e,
            (long)c.LayerCount * l0.Down.Rows * l0.Down.Cols,
            (long)w.Output.Rows * w.Output.Cols,
        ];
        Action[] pieces =
        [
            () => { foreach (var l in w.Layers) matMul.Multiply(l.Query, y1, l.Key, y2, l.Value, y0, x.AsSpan(0, sequences * e), sequences); },
            () => { foreach (var l in w.Layers) matMul.Multiply(l.AttentionOutput, x.AsSpan(0, sequences * c.QueryDim), sequences, y1); },
            () => { foreach (var l in w.Layers) matMul.Multiply(l.Gate, y1, l.Up, y0, x.AsSpan(0, sequences * e), sequences); },
            () => { foreach (var l in w.Layers) matMul.Multiply(l.Down, x.AsSpan(0, sequences * f), sequences, y1); },
            () => matMul.Multiply(w.Output, x.AsSpan(0, sequences * e), sequences, y0),
        ];

        // Rearranges every paired copy, then runs an untimed step, so neither layout's steps start from what the
        // rearranging left in the caches.
        void Layout(bool paired)
        {
            foreach (var copy in pairedCopies) copy.SetPairedGroups(paired);
            Step(segments);
        }

        double Step(BatchSegment[] segments, KernelPath? path = null)
        {
            if (decoded == Decoded)
            {
                foreach (var s in seqs) s.Truncate(Prompt);
                decoded = 0;
            }
            using var forced = path is KernelPath p ? KernelPaths.Force(p) : null;
            long start = Stopwatch.GetTimestamp();
            forward.Forward(tokens, segments, logits);
            decoded++;
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        static double Time(Action a)
        {
            long start = Stopwatch.GetTimestamp();
            a();
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        if (comparePaths) CheckSamePaths();
        if (compareCopies) CheckSameCopies();
        // Untimed until the kernels have left tier 0 (FourTokenAlternation.WarmUp), on both paths when two are compared.
        long warmStart = Stopwatch.GetTimestamp();
        for (int warm = 0; warm < 10 || !FourTokenAlternation.Warm(warmStart); warm++)
        {
            if (compareCopies) Layout(warm % 2 == 0);
            Step(segments, warm % 2 == 1 ? pathB : pathA);
        }
        foreach (var p in pieces) p();
        var step = new double[rounds];
        var stepEach = new double[rounds];
        var piece = names.Select(_ => new double[rounds]).ToArray();
        for (int r = 0; r < rounds; r++)
        {
            double sum = 0;
            // Compared, the two go first in turn: the sequences grow through both, so each sees the same positions.
            double each = 0;
            for (int i = 0; compareHeads && r % 2 == 1 && i < StepsPerRound; i++) each += Step(headByHead);
            for (int i = 0; comparePaths && r % 2 == 1 && i < StepsPerRound; i++) each += Step(segments, pathB);
            if (compareCopies && r % 2 == 1) Layout(paired: false);
            for (int i = 0; compareCopies && r % 2 == 1 && i < StepsPerRound; i++) each += Step(segments);
            if (compareCopies) Layout(paired: true);
            for (int i = 0; i < StepsPerRound; i++) sum += Step(segments, pathA);
            for (int i = 0; compareHeads && r % 2 == 0 && i < StepsPerRound; i++) each += Step(headByHead);
            for (int i = 0; comparePaths && r % 2 == 0 && i < StepsPerRound; i++) each += Step(segments, pathB);
            if (compareCopies && r % 2 == 0) Layout(paired: false);
            for (int i = 0; compareCopies && r % 2 == 0 && i < StepsPerRound; i++) each += Step(segments);
            step[r] = sum / StepsPerRound;
            stepEach[r] = each / StepsPerRound;
            if (compareCopies) Layout(paired: true); // the products alone run the paired layout, as the shares' steps did
            for (int p = 0; p < pieces.Length; p++) piece[p][r] = Time(pieces[p]);
        }
        Console.WriteLine($"{shape.Name} {type}, {threads} thread(s), {sequences} sequences, {rounds} rounds{(comparePaths ? $", every product on {args[6]}" : "")}; step median {Median(step):F2} ms ({sequences / Median(step) * 1000:F0} tok/s)");
        double products = 0;
        for (int p = 0; p < pieces.Length; p++)
        {
            double share = Median([.. Enumerable.Range(0, rounds).Select(r => piece[p][r] / step[r])]);
            products += share;
            double ms = Median(piece[p]);
            Console.WriteLine($"  {names[p],-12} {ms,7:F2} ms  {share * 100,5:F1}% of the step  {macs[p] * sequences / (ms * 1e6) / threads,6:F1} MAC/ns/thread");
        }
        if (compareHeads)
            Console.WriteLine($"  head by head: step median {Median(stepEach):F2} ms; heads together / head by head, median of rounds: " +
                $"{Median([.. Enumerable.Range(0, rounds).Select(r => step[r] / stepEach[r])]):F3}");
        if (comparePaths)
            Console.WriteLine($"  on {args[7]}: step median {Median(stepEach):F2} ms; {args[6]} / {args[7]}, median of rounds: " +
                $"{Median([.. Enumerable.Range(0, rounds).Select(r => step[r] / stepEach[r])]):F3}");
        if (compareCopies)
            Console.WriteLine($"  unpaired copy: step median {Median(stepEach):F2} ms; paired / unpaired, median of rounds: " +
                $"{Median([.. Enumerable.Range(0, rounds).Select(r => step[r] / stepEach[r])]):F3}");
        Console.WriteLine($"  {"rest",-12} {"",7}     {(1 - products) * 100,5:F1}% (attention, norms, rope, SwiGLU, regions)");
        foreach (var s in seqs) s.Release();

        // One step in each layout from the same positions: the logits must agree to the bit.
        void CheckSameCopies()
        {
            var first = new float[logits.Length];
            Step(segments);
            logits.CopyTo(first, 0);
            foreach (var s in seqs) s.Truncate(s.Length - 1);
            decoded--;
            foreach (var copy in pairedCopies) copy.SetPairedGroups(false);
            Step(segments);
            foreach (var copy in pairedCopies) copy.SetPairedGroups(true);
            if (!first.AsSpan().SequenceEqual(logits))
                throw new InvalidOperationException("profile-step: the paired and plain layouts give different logits");
        }

        // One step on each path from the same positions: the logits must agree to the bit (every path does).
        void CheckSamePaths()
        {
            var first = new float[logits.Length];
            Step(segments, pathA);
            logits.CopyTo(first, 0);
            foreach (var s in seqs) s.Truncate(s.Length - 1);
            decoded--;
            Step(segments, pathB);
            if (!first.AsSpan().SequenceEqual(logits))
                throw new InvalidOperationException($"profile-step: paths {args[6]} and {args[7]} give different logits");
        }
    }

    private static KernelPath? PathArgument(string name) => name == "default" ? null : KernelPaths.Parse(name, "profile-step paths");

    private static double Median(double[] x)
    {
        var sorted = x.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>A sequence's store that attends head by head: everything passes through except <see cref="IKvStore.TryAttendHeads"/>.</summary>
    private sealed class HeadByHead(IKvStore inner) : IKvStore
    {
        public int Length => inner.Length;
        public int MaxLength => inner.MaxLength;
        public void Reserve(int length) => inner.Reserve(length);
        public void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values) => inner.Write(layer, position, keys, values);
        public void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch) => inner.Attend(layer, kvHead, block, scale, scratch);
        public bool AttendsWholeChunks => inner.AttendsWholeChunks;
        public void Prefetch(int layer, int kvHead, int end) => inner.Prefetch(layer, kvHead, end);
        public void Commit(int length) => inner.Commit(length);
    }
}
