using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Cli.Bench;
using KvSharp.Evaluation;

namespace KvSharp.Cli;

/// <summary>
/// `kvsharp eval`: what each KV cache configuration costs in quality and buys in memory, teacher-forced over a text
/// (<see cref="KvEvaluator"/>): perplexity, KL divergence from the exact cache and top-1 agreement, KV bytes, and
/// the decode rate. The table (or with --json, one JSON object) goes to stdout, progress to stderr.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = CommonOptions.ModelOrDefault();
        var tokenizer = CommonOptions.Tokenizer();
        var text = new Option<string?>("--text") { Description = "evaluate on the text of this file", HelpName = "FILE" };
        var generate = NumberOption.Optional("--generate",
            $"evaluate on N tokens the model writes itself (seeded; pieces from BOS of at most {EvalText.DefaultPieceTokens} tokens and half the context)", Allowed.AtLeast(2));
        generate.HelpName = "N";
        var seed = NumberOption.Create("--seed", "random seed of --generate", 42UL, Allowed.AnyUInt64);
        var kvTypes = KvTypes("--kv-type", "KV cache type to evaluate (keys and values)", "default: all of them");
        var keyTypes = KvTypes("--kv-type-k", "key type to evaluate with each --kv-type-v", "default: --kv-type, else f32");
        var valueTypes = KvTypes("--kv-type-v", "value type to evaluate with each --kv-type-k", "default: --kv-type, else f32");
        var context = NumberOption.Optional("--context", "tokens per evaluation window (default: the model's trained length)", Allowed.AtLeast(2), "-c");
        var policies = KvPolicyOption.Many("--policy",
            $"cache policy to evaluate, repeatable or comma-separated: {KvPolicyOption.Forms} (default: full)");
        var sweep = new Option<bool>("--sweep")
        {
            Description = $"run each --policy (default: window and sinks:4+window) at budgets {string.Join('/', PolicySweep.DefaultBudgets)} positions, plus full, into one table",
        };
        var plot = new Option<string?>("--plot") { Description = "draw perplexity per segment, one line per run, to this .svg or .png file", HelpName = "FILE" };
        var json = new Option<bool>("--json") { Description = "write one JSON object (a `runs` array) to stdout instead of the table" };
        var threads = CommonOptions.Threads();
        var command = new Command("eval", "measure KV cache types against the exact cache: perplexity, KL divergence, top-1 agreement, memory, speed")
        {
            model, tokenizer, text, generate, seed, kvTypes, keyTypes, valueTypes, policies, sweep, context, json, plot, threads,
        };
        command.SetAction(r =>
        {
            string? textFile = r.GetValue(text);
            int? generated = r.GetValue(generate);
            if (textFile != null && generated != null) throw new ArgumentException("give the evaluation text with --text FILE or --generate N, not both");
            if (textFile == null && generated == null) throw new ArgumentException("eval needs a text: --text FILE or --generate N");
            if (textFile != null)
            {
                CommonOptions.CheckNotDirectory("--text", textFile, "a text file");
                if (!File.Exists(textFile)) throw new FileNotFoundException($"--text: file not found: {textFile}", textFile);
            }
            var policyList = r.GetValue(policies) is { Length: > 0 } named ? named : null;
            bool sweeping = r.GetValue(sweep);
            // Policies are measured at the exact element type unless types are named; types alone, each of them.
            bool typesNamed = r.GetValue(kvTypes) is { Length: > 0 } || r.GetValue(keyTypes) is { Length: > 0 } || r.GetValue(valueTypes) is { Length: > 0 };
            EvalSetup[] types = !typesNamed && (policyList != null || sweeping) ? [new EvalSetup(KvElementType.F32)]
                : Setups(r.GetValue(kvTypes), r.GetValue(keyTypes), r.GetValue(valueTypes));
            string? plotFile = r.GetValue(plot);
            if (plotFile != null && Path.GetExtension(plotFile).ToLowerInvariant() is not (".svg" or ".png"))
                throw new ArgumentException($"--plot {plotFile}: the file must end in .svg or .png");
            if (plotFile != null) OutputPaths.CheckFile("--plot", plotFile);

            using var llm = CommonOptions.Load(DefaultModel.Resolve(r.GetValue(model), Console.Error), r.GetValue(tokenizer), r.ThreadCount(threads));
            int ctx = r.GetValue(context) ?? llm.Config.TrainedContextLength;
            IReadOnlyList<KvCachePolicy> runPolicies = sweeping
                ? PolicySweep.Expand(policyList ?? PolicySweep.DefaultPolicies, SweepBudgets(ctx, Console.Error))
                : policyList?.Distinct().ToArray() ?? [KvCachePolicy.Full];
            foreach (var p in runPolicies) KvPolicyOption.CheckFits("--policy", p, ctx);
            var setups = runPolicies.SelectMany(p => types.Select(t => t with { CachePolicy = p })).ToArray();
            string source;
            int[] tokens;
            if (textFile != null)
            {
                tokens = llm.Tokenizer.Encode(File.ReadAllText(textFile), addSpecial: true, parseSpecial: false);
                if (tokens.Length < 2) throw new ArgumentException($"--text {textFile}: the file has no text to score (it is empty)");
                source = textFile;
            }
            else
            {
                // Pieces well within what the model attends to: half the trained context, or of the --context given
                // where that is longer (stories260K's metadata says 128 though it was trained at 512), at most 256.
                int piece = Math.Max(2, Math.Min(EvalText.DefaultPieceTokens, Math.Max(llm.Config.TrainedContextLength, ctx) / 2));
                Console.Error.WriteLine($"[kvsharp] eval: generating {generated} tokens of text in pieces of at most {piece} (seed {r.GetValue(seed)})");
                tokens = EvalText.Generate(llm, generated!.Value, r.GetValue(seed), piece);
                source = $"generated (seed {r.GetValue(seed)})";
            }
            Console.Error.WriteLine($"[kvsharp] eval: {tokens.Length} tokens, {source}; context {ctx}; {string.Join(", ", setups.Select(Describe))}");
            var report = KvEvaluator.Run(llm, tokens, setups, new EvalOptions { ContextLength = ctx });
            Console.Error.WriteLine($"[kvsharp] eval: {report.ScoredTokens} tokens scored in {report.Windows} windows");
            if (r.GetValue(json))
                Console.Out.WriteLine(ToJson(report, llm.Path, source).ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            else
            {
                WriteTable(report, Console.Out);
                if (report.Runs[0].SegmentPerplexity.Count > 1) WriteSegments(report, Console.Out);
            }
            if (plotFile != null)
            {
                SegmentPlot.Write(report, plotFile, $"{Path.GetFileName(llm.Path)}: {report.Tokens:N0} tokens, context {ctx}");
                Console.Error.WriteLine($"[kvsharp] eval: plot written to {plotFile}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>
    /// The sweep's budgets that fit the context: a larger one cannot run at all (a policy may not keep more positions
    /// than the context holds), so it is left out and said so, rather than failing the whole sweep.
    /// </summary>
    internal static int[] SweepBudgets(int context, TextWriter log)
    {
        int[] fit = PolicySweep.DefaultBudgets.Where(b => b <= context).ToArray();
        if (fit.Length == 0)
            throw new ArgumentException($"--sweep: every budget ({string.Join('/', PolicySweep.DefaultBudgets)} positions) is more than --context {context}; " +
                $"give a --context of at least {PolicySweep.DefaultBudgets[0]}");
        if (fit.Length < PolicySweep.DefaultBudgets.Count)
            log.WriteLine($"[kvsharp] eval: --sweep skips budgets {string.Join('/', PolicySweep.DefaultBudgets.Skip(fit.Length))}: more than the context of {context}");
        return fit;
    }

    /// <summary>
    /// The runs: each --kv-type for keys and values (default every built-in type); with --kv-type-k or --kv-type-v,
    /// every key type with every value type instead, a side not given taking --kv-type's types (else f32).
    /// </summary>
    internal static EvalSetup[] Setups(KvElementType[]? both, KvElementType[]? keys, KvElementType[]? values)
    {
        both = both is { Length: > 0 } ? both : null;
        if (keys is not { Length: > 0 } && values is not { Length: > 0 })
            return (both ?? Enum.GetValues<KvElementType>()).Select(t => new EvalSetup(t)).ToArray();
        KvElementType[] fallback = both ?? [KvElementType.F32];
        keys = keys is { Length: > 0 } ? keys : fallback;
        values = values is { Length: > 0 } ? values : fallback;
        return keys.SelectMany(k => values.Select(v => new EvalSetup(k, v))).ToArray();
    }

    /// <summary>A list of KV types, repeatable and comma-separated ("--kv-type f32,q4_0").</summary>
    private static Option<KvElementType[]> KvTypes(string name, string description, string defaults)
    {
        var all = Enum.GetValues<KvElementType>();
        string names = string.Join(", ", all.Select(Name));
        return new Option<KvElementType[]>(name)
        {
            Description = $"{description}, repeatable or comma-separated: {names} ({defaults})",
            HelpName = string.Join('|', all.Select(Name)),
            AllowMultipleArgumentsPerToken = false,
            CustomParser = result =>
            {
                var types = new List<KvElementType>();
                foreach (var token in result.Tokens)
                    foreach (string item in token.Value.Split(',', StringSplitOptions.TrimEntries))
                    {
                        try { types.Add(KvElementTypes.Parse(item)); }
                        catch (ArgumentException) { result.AddError($"{name} must be one of {names}; got '{item}'"); }
                    }
                return [.. types.Distinct()];
            },
        };
    }

    private static string Name(KvElementType type) => type.ToString().ToLowerInvariant();

    private static string Describe(EvalSetup s) => s.KeyType == s.ValueType ? $"{s.Policy} {Name(s.KeyType)}" : $"{s.Policy} K {Name(s.KeyType)} V {Name(s.ValueType)}";

    private static void WriteTable(EvalReport report, TextWriter stdout)
    {
        var table = new BenchTable("policy", "budget", "K", "V", "perplexity", "mean KL", "top-1", "KV bytes/token", "peak KV bytes", "decode tok/s");
        foreach (var run in report.Runs)
            table.Add(run.Policy, Budget(run.Policy)?.ToString("N0") ?? "all", Name(run.KeyType), Name(run.ValueType), $"{run.Perplexity:F4}", $"{run.MeanKl:F6}", $"{run.Top1Agreement * 100:F2}%",
                $"{run.KvBytesPerToken:N0}", $"{run.PeakKvBytes:N0}", $"{run.DecodeTokensPerSecond:F0}");
        table.Write(stdout);
    }

    /// <summary>Positions a run's policy keeps per query, or null for full.</summary>
    private static int? Budget(string policy) => KvCachePolicy.Parse(policy).Budget;

    /// <summary>Perplexity per segment: a row per segment, a column per run.</summary>
    private static void WriteSegments(EvalReport report, TextWriter stdout)
    {
        stdout.WriteLine();
        stdout.WriteLine($"perplexity per {report.SegmentTokens}-token segment:");
        var table = new BenchTable(["tokens", .. report.Runs.Select(r => r.KeyType == KvElementType.F32 ? r.Policy : $"{r.Policy} {Name(r.KeyType)}")]);
        int segments = report.Runs[0].SegmentPerplexity.Count;
        for (int i = 0; i < segments; i++)
            table.Add([$"{(i + 1) * report.SegmentTokens:N0}", .. report.Runs.Select(r => double.IsFinite(r.SegmentPerplexity[i]) ? $"{r.SegmentPerplexity[i]:F3}" : "-")]);
        table.Write(stdout);
    }

    private static JsonObject ToJson(EvalReport report, string model, string source) => new()
    {
        ["model"] = model,
        ["text"] = source,
        ["tokens"] = report.Tokens,
        ["scored_tokens"] = report.ScoredTokens,
        ["context"] = report.ContextLength,
        ["windows"] = report.Windows,
        ["segment_tokens"] = report.SegmentTokens,
        ["runs"] = new JsonArray(report.Runs.Select(run => (JsonNode)new JsonObject
        {
            ["policy"] = run.Policy,
            ["budget"] = Budget(run.Policy),
            ["kv_type_k"] = Name(run.KeyType),
            ["kv_type_v"] = Name(run.ValueType),
            ["perplexity"] = Number(run.Perplexity),
            ["mean_kl"] = Number(run.MeanKl),
            ["top1_agreement"] = Number(run.Top1Agreement),
            ["kv_bytes_per_token"] = run.KvBytesPerToken,
            ["peak_kv_bytes"] = run.PeakKvBytes,
            ["decode_tokens_per_s"] = Number(run.DecodeTokensPerSecond),
            ["segments"] = new JsonArray(run.SegmentPerplexity.Select(Number).ToArray()),
        }).ToArray()),
    };

    /// <summary>JSON has no NaN or infinity: a measure that is not finite (non-finite logits) is null.</summary>
    private static JsonNode? Number(double x) => double.IsFinite(x) ? JsonValue.Create(x) : null;
}
