using LLama.Native;

/// <summary>The command line, with kvsharp bench's option names and defaults (speed: pp128 / tg64, 5 repetitions).</summary>
internal sealed record PeerOptions(string Model, int Threads, GGMLType KvType, string KvTypeName, int Prompt, int Gen,
    int Repetitions, double WarmUp, int[] Concurrency, string? JsonPath, AvxLevel? Avx)
{
    public static PeerOptions Parse(string[] args)
    {
        string? model = null, json = null, kv = "f32";
        AvxLevel? avx = null;
        int threads = Math.Min(Environment.ProcessorCount, 8), prompt = 128, gen = 64, reps = 5;
        double warmUp = 3;
        int[] levels = [1, 4, 16];
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--model": model = Value(); break;
                case "--threads": threads = Positive(Value(), "--threads"); break;
                case "--kv-type": kv = Value(); break;
                case "--prompt-tokens": prompt = Positive(Value(), "--prompt-tokens"); break;
                case "--gen-tokens": gen = Positive(Value(), "--gen-tokens"); break;
                case "--repetitions": reps = Positive(Value(), "--repetitions"); break;
                case "--warmup": warmUp = double.Parse(Value(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--concurrency": levels = Value().Split(',').Select(v => Positive(v, "--concurrency")).ToArray(); break;
                case "--json": json = Value(); break;
                case "--avx": avx = Value() switch
                {
                    "avx2" => AvxLevel.Avx2,
                    "avx512" => AvxLevel.Avx512,
                    var other => throw new ArgumentException($"--avx must be avx2 or avx512 (which of LLamaSharp's native builds to load; default: what the CPU has), got '{other}'"),
                };
                    break;
                default: throw new ArgumentException($"unknown option '{args[i]}' (--model, --threads, --kv-type, --prompt-tokens, --gen-tokens, --repetitions, --warmup, --concurrency, --json, --avx)");
            }
        }
        if (model == null) throw new ArgumentException("--model FILE.gguf is required");
        if (!File.Exists(model)) throw new FileNotFoundException($"--model: {model} does not exist");
        var type = kv switch
        {
            "f32" => GGMLType.GGML_TYPE_F32,
            "f16" => GGMLType.GGML_TYPE_F16,
            "q8_0" => GGMLType.GGML_TYPE_Q8_0,
            "q4_0" => GGMLType.GGML_TYPE_Q4_0,
            _ => throw new ArgumentException($"--kv-type must be one of f32, f16, q8_0, q4_0; got '{kv}'"),
        };
        return new PeerOptions(model, threads, type, kv, prompt, gen, reps, warmUp, levels, json, avx);
    }

    private static int Positive(string value, string option)
        => int.TryParse(value, out int n) && n > 0 ? n : throw new ArgumentException($"{option} must be a positive integer; got '{value}'");
}
