using System.CommandLine;

namespace KvSharp.Cli;

/// <summary>Options several commands share.</summary>
internal static class CommonOptions
{
    public static Option<string> Model() => new("--model", "-m") { Description = "GGUF model file or llama2.c checkpoint", Required = true };

    public static Option<string?> Tokenizer() => new("--tokenizer") { Description = "tokenizer.bin for a llama2.c checkpoint" };

    public static Option<int> Threads() => new("--threads", "-t")
    {
        Description = "kernel worker threads (default: all cores)",
        DefaultValueFactory = _ => Environment.ProcessorCount,
    };

    public static Option<string> KvType() => new("--kv-type")
    {
        Description = "how the KV cache stores keys and values: f32 (exact), f16 (half the memory) or q8_0 (8-bit integers with a float scale per 32: ~0.28x the memory)",
        DefaultValueFactory = _ => "f32",
    };

    public static LlmModel Load(string model, string? tokenizer, int threads) =>
        LlmModel.Load(model, new ModelLoadOptions { TokenizerPath = tokenizer, Threads = threads });
}
