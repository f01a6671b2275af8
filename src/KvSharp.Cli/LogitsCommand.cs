using System.CommandLine;
using System.Runtime.InteropServices;
using KvSharp.Cache;

namespace KvSharp.Cli;

/// <summary>
/// `kvsharp logits`: the logits of a token sequence as float32 little-endian rows of n_vocab, one per input token
/// (the llama.cpp fixtures' format), from one batched prefill or from token-by-token decode.
/// </summary>
internal static class LogitsCommand
{
    private enum LogitsMode { Batch, Sequential }

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var tokens = new Option<string>("--tokens") { Description = "comma-separated token ids", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "output file", Required = true };
        var mode = ChoiceOption.Create("--mode", "batch (one prefill) or sequential (one token at a time)", ChoiceOption.Of<LogitsMode>(), LogitsMode.Batch);
        var threads = CommonOptions.Threads();
        var command = new Command("logits", "write the logits of a token sequence to a file") { model, tokenizer, tokens, output, mode, threads };
        command.SetAction(r =>
        {
            int[] ids = ParseTokens(r.GetValue(tokens)!);
            OutputPaths.CheckFile("--out", r.GetValue(output)!);
            using var llm = CommonOptions.Load(r.GetValue(model)!, r.GetValue(tokenizer), r.ThreadCount(threads));
            int vocab = llm.Config.VocabSize, trained = llm.Config.TrainedContextLength;
            if (ids.Length > trained)
                Console.Error.WriteLine($"warning: {ids.Length} tokens exceed the model's trained context length {trained}; logits past it may degrade");
            var cache = llm.CreateCache(KvCacheMode.Contiguous, Math.Max(ids.Length, trained));
            var logits = new float[ids.Length * vocab];
            if (r.GetValue(mode).Value == LogitsMode.Batch)
            {
                llm.Evaluate(ids, cache, allLogits: true).CopyTo(logits, 0);
            }
            else
            {
                for (int i = 0; i < ids.Length; i++)
                    llm.Evaluate(ids.AsSpan(i, 1), cache).CopyTo(logits, i * vocab);
            }
            File.WriteAllBytes(r.GetValue(output)!, MemoryMarshal.AsBytes(logits.AsSpan()).ToArray());
            Console.Error.WriteLine($"[kvsharp] wrote {ids.Length} x {vocab} logits to {r.GetValue(output)}");
            return 0;
        });
        return command;
    }

    internal static int[] ParseTokens(string text)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new ArgumentException("--tokens is empty");
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out ids[i]) || ids[i] < 0)
                throw new ArgumentException($"--tokens: '{parts[i]}' (item {i + 1}) is not a token id");
        return ids;
    }
}
