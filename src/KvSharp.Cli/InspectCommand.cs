using System.CommandLine;
using KvSharp.Cache;
using KvSharp.Gguf;
using KvSharp.Llama2c;
using KvSharp.Models;

namespace KvSharp.Cli;

/// <summary>
/// `kvsharp inspect`: what a model file holds — metadata, tensor types and counts, parameters — and what its KV
/// cache costs: bytes per token and per full context by 2 x layers x kv_heads x head_dim x bytes. Sizes are
/// computed, never allocated, and only after the metadata was checked against the tensors (as `run` does), so a
/// damaged block_count is reported instead of sized.
/// </summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "GGUF file or llama2.c checkpoint" };
        var context = NumberOption.Optional("--context", "context length to size the cache for (default: trained)", Allowed.AtLeast(1), "-c");
        var all = new Option<bool>("--all-metadata") { Description = "print long arrays in full" };
        var command = new Command("inspect", "describe a model file and its KV cache cost") { path, context, all };
        command.SetAction(r => CliErrors.Run(() => Inspect(r.GetValue(path)!, r.GetValue(context), r.GetValue(all), Console.Out)));
        return command;
    }

    /// <summary>Writes the report for <paramref name="file"/> to <paramref name="o"/> (tests run it in-process).</summary>
    internal static int Inspect(string file, int? context, bool allMetadata, TextWriter o)
    {
        ModelConfig? config;
        long parameters = 0;
        if (LlmModel.IsGguf(file))
        {
            using var g = GgufFile.Open(file);
            o.WriteLine($"file: {file} (GGUF v{g.Version}, {g.FileLength} bytes, alignment {g.Alignment})");
            o.WriteLine($"metadata ({g.Metadata.Count} keys):");
            foreach (var key in g.MetadataKeys) o.WriteLine($"  {PrintableText.Of(key)} = {Describe(g.Metadata[key], allMetadata)}");
            o.WriteLine($"tensors: {g.Tensors.Count}");
            foreach (var group in g.Tensors.GroupBy(t => t.Type).OrderBy(x => x.Key))
                o.WriteLine($"  {group.Key,-6} {group.Count(),5} tensors  {group.Sum(t => t.ElementCount),14:N0} parameters  {group.Sum(t => t.ByteSize),14:N0} bytes");
            parameters = g.Tensors.Sum(t => t.ElementCount);
            config = g.Tensors.Count == 0 ? null : ModelConfig.FromGguf(g);
            if (config == null) o.WriteLine("vocab-only file: no weights, usable for tokenization");
            else GgufModelLoader.Validate(g, config);
        }
        else
        {
            var c = Llama2cCheckpoint.ReadConfig(file);
            config = c;
            o.WriteLine($"file: {file} (llama2.c checkpoint)");
            parameters = (long)c.VocabSize * c.EmbeddingDim + c.LayerCount * (2L * c.EmbeddingDim
                + (long)c.EmbeddingDim * (c.QueryDim * 2 + c.KvDim * 2) + 3L * c.EmbeddingDim * c.FeedForwardDim) + c.EmbeddingDim;
        }
        if (config == null) return 0;

        var c2 = config;
        o.WriteLine($"architecture: {c2.Architecture} ({PrintableText.Of(c2.Name)})");
        o.WriteLine($"  embedding {c2.EmbeddingDim}, layers {c2.LayerCount}, heads {c2.HeadCount}, kv heads {c2.KvHeadCount} " +
                    $"({Attention(c2)}), head dim {c2.HeadDim}, ffn {c2.FeedForwardDim}, vocab {c2.VocabSize}");
        o.WriteLine((c2.LearnedPositions ? "  learned position embeddings (no rope)" : $"  rope {c2.RopeStyle} base {c2.RopeTheta} dims {c2.RopeDimensions}") +
                    (c2.LongRope ? $", longrope (original context {c2.RopeOriginalContextLength?.ToString() ?? "not given"})" : "") +
                    (c2.Yarn is { } yarn ? $", yarn x{1f / c2.RopeFrequencyScale} from {yarn.OriginalContextLength} (beta {yarn.BetaFast}/{yarn.BetaSlow})" : "") +
                    (c2.RopeFrequencyScale != 1f && c2.Yarn == null ? $", linear scaling x{1f / c2.RopeFrequencyScale}" : "") +
                    (c2.RopeAttentionFactor != 1f ? $", attention factor {c2.RopeAttentionFactor}" : "") +
                    (c2.LayerNorm ? $", layer norm (with biases) eps {c2.RmsNormEps}" : $", rms eps {c2.RmsNormEps}") + $", trained context {c2.TrainedContextLength}" +
                    (c2.ParallelFeedForward ? ", attention and feed-forward in parallel" : "") +
                    (c2.SlidingWindow is int w ? $", sliding window {w}" : "") + (c2.HasQkNorm ? ", per-head q/k norm" : "") +
                    (c2.NoRopeLayerStep > 0 ? $", no rope in every {c2.NoRopeLayerStep}th layer" : "") +
                    (c2.HasLearnedSinks ? ", learned sink logit per head" : ""));
        if (c2.LatentAttention is { } mla)
            o.WriteLine($"  latent attention: each token cached as {mla.RopeDim} rotated + {mla.KvRank} latent values per layer (one KV row of {c2.HeadDim}); " +
                        $"heads expand it to {mla.NopeDim}+{mla.RopeDim} key and {mla.ValueDim} value dimensions" +
                        (mla.QueryRank > 0 ? $"; queries through rank {mla.QueryRank}" : ""));
        if (c2.IsMixtureOfExperts)
            o.WriteLine($"  mixture of {c2.ExpertCount} experts, {c2.ExpertsUsed} per token, expert ffn {c2.ExpertFeedForwardDim}" +
                        (c2.NormalizeExpertWeights ? ", chosen weights normalised" : "") +
                        (c2.ExpertGating == ExpertGating.Sigmoid ? ", sigmoid gating" : "") +
                        (c2.ExpertGating == ExpertGating.SoftmaxOfChosen ? ", softmax over the chosen experts' logits" : "") +
                        (c2.HasExpertBiases ? ", router and expert biases" : "") +
                        (c2.Activation == FeedForwardActivation.SwiGluClamped ? $", SwiGLU clamped at {FeedForwardActivations.SwiGluLimit}" : "") +
                        (c2.ExpertWeightsScale != 1f ? $", weights x{c2.ExpertWeightsScale}" : "") +
                        (c2.SharedExpertFeedForwardDim > 0 ? $", shared expert ffn {c2.SharedExpertFeedForwardDim}" : "") +
                        (c2.LeadingDenseLayers > 0 ? $", first {c2.LeadingDenseLayers} layer(s) dense" : ""));
        o.WriteLine($"parameters: {parameters:N0}");
        int ctx = context ?? c2.TrainedContextLength;
        if (ctx <= 0) throw new ArgumentException($"--context must be positive, got {ctx}");
        long perToken = KvSizing.BytesPerToken(c2, KvElementType.F32);
        // decimal: a context of 2^31 tokens times a large model's bytes per token does not fit in a long.
        decimal full = (decimal)perToken * ctx;
        // A latent model's values are its keys: the cache keeps each row once.
        string halves = c2.ValuesAreKeys ? "1" : "2";
        o.WriteLine(c2.ValuesAreKeys ? "KV cache (layers x kv_heads x head_dim x bytes: each row once, the values are the keys):"
            : "KV cache (2 x layers x kv_heads x head_dim x bytes):");
        o.WriteLine($"  per token: {halves} x {c2.LayerCount} x {c2.KvHeadCount} x {c2.HeadDim} x 4 (F32) = {perToken:N0} bytes" +
                    $"   (--kv-type f16: {KvSizing.BytesPerToken(c2, KvElementType.F16):N0}, q8_0: {KvSizing.BytesPerToken(c2, KvElementType.Q8_0):N0}, q4_0: {KvSizing.BytesPerToken(c2, KvElementType.Q4_0):N0})");
        o.WriteLine($"  full context of {ctx}: {full:N0} bytes ({full / 1048576m:F2} MiB)");
        if (c2.LatentAttention is { } latent)
        {
            // What caching each head's expanded key and value would take (llama.cpp b4748's deepseek2 cache).
            decimal expanded = (decimal)c2.LayerCount * c2.HeadCount * (latent.NopeDim + latent.RopeDim + latent.ValueDim) * 4 * ctx;
            o.WriteLine($"  with each head's key and value expanded ({c2.HeadCount} x ({latent.NopeDim + latent.RopeDim} + {latent.ValueDim})) it would be {expanded:N0} bytes: " +
                        $"{expanded / full:0.#}x more");
        }
        else if (c2.KvHeadCount < c2.HeadCount)
            o.WriteLine($"  without GQA ({c2.HeadCount} kv heads) it would be {full * c2.GroupSize:N0} bytes: {c2.GroupSize}x more");
        o.WriteLine($"  a session allocates: static {full:N0} bytes up front; contiguous grows by doubling as tokens arrive");
        if (c2.HasLayerWindows && c2.SlidingWindow is int window && window < ctx)
        {
            // A session's contiguous cache keeps a ring of the window in the local layers; the engine's paged pool (serve)
            // keeps them in blocks of their own and lets go of those behind the window.
            int local = Enumerable.Range(0, c2.LayerCount).Count(l => c2.LayerWindow(l) > 0);
            int rows = KvSizing.LocalLayerRows(c2);
            decimal ring = KvSizing.SequenceBytes(c2, KvElementFormat.Of(KvElementType.F32), ctx);
            o.WriteLine($"  {local} of {c2.LayerCount} layers attend through a window of {window}: in a session they keep a ring of {rows:N0} positions " +
                        $"(the window, a step and a tile), so the full context needs {ring:N0} bytes ({ring / 1048576m:F2} MiB); " +
                        "serve's paged pool keeps them in blocks of their own and lets go of those behind the window; " +
                        "with --swa-full (or, in serve, KV tiers or a KIVI type) every position of every layer");
        }
        return 0;
    }

    private static string Attention(ModelConfig c) =>
        c.KvHeadCount == c.HeadCount ? "multi-head" : c.KvHeadCount == 1 ? "multi-query" : $"grouped-query, {c.GroupSize} heads per kv head";

    /// <summary>Control characters shown as escapes, so a chat template or a newline token stays on one line.</summary>
    private static string Escape(string s)
    {
        var b = new System.Text.StringBuilder(s.Length);
        foreach (char c in s)
            b.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", < ' ' => $"\\x{(int)c:X2}", _ => c.ToString() });
        return b.ToString();
    }

    private static string Describe(GgufValue v, bool all)
    {
        if (v.Value is not GgufArray a) return v.Value is string s ? Escape(s.Length > 200 && !all ? s[..200] + "..." : s) : v.ToString();
        int show = all ? a.Length : Math.Min(8, a.Length);
        var items = new List<string>();
        for (int i = 0; i < show; i++) items.Add(a.Items.GetValue(i) is string str ? $"\"{Escape(str)}\"" : Convert.ToString(a.Items.GetValue(i), System.Globalization.CultureInfo.InvariantCulture)!);
        return $"[{a.ElementType} x {a.Length}] [{string.Join(", ", items)}{(show < a.Length ? ", ..." : "")}]";
    }
}
