using System.Diagnostics;
using KvSharp.Cli;
using KvSharp.Engine;
using KvSharp.Gguf;
using KvSharp.Llama2c;
using KvSharp.Models;

namespace KvSharp.Tests.Models;

/// <summary>
/// A seeded sweep of damaged model files (stories260K.gguf, stories260K.bin, tok512.bin): header bytes, metadata value
/// types, llama2.c header fields, NaN/Inf and flipped bytes in the weights, tokenizer entries. Every mutant goes
/// through what `kvsharp inspect` and `kvsharp run` do. Each must either work or fail with one of the documented
/// exceptions, whose message is one printable line of sane length: never another exception, a stack trace's worth of
/// binary, or a hang.
/// </summary>
public sealed class MutatedFileSweepTests : IDisposable
{
    private static readonly string StoriesGguf = TestPaths.Model("stories260K.gguf");
    private static readonly string StoriesBin = TestPaths.Model("stories260K.bin");
    private static readonly string Tok512 = TestPaths.Model("tok512.bin");

    /// <summary>Generous: the sweeps take a few seconds; this only catches a hang or a runaway allocation.</summary>
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("kvsharp-mutants-");
    private readonly List<string> _failures = [];
    private int _rejected, _accepted;

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>What a damaged file may throw: each names the file and what is wrong in it (NotSupportedException: a feature it names that KvSharp lacks).</summary>
    private static bool IsDocumented(Exception e) =>
        e is GgufFormatException or ModelFormatException or InvalidDataException or NonFiniteActivationsException or NotSupportedException;

    private void Check(string mutation, Action action)
    {
        try
        {
            action();
            _accepted++;
        }
        catch (Exception e)
        {
            _rejected++;
            if (!IsDocumented(e)) _failures.Add($"{mutation}: {e.GetType().Name} is not a documented format exception: {e}");
            else if (e.Message.Any(char.IsControl)) _failures.Add($"{mutation}: message has control characters: {e.Message}");
            else if (e.Message.Length > 600) _failures.Add($"{mutation}: message is {e.Message.Length} characters long: {e.Message[..200]}...");
        }
    }

    private void AssertClean(string sweep, Stopwatch time)
    {
        TestContext.Current.TestOutputHelper?.WriteLine($"{sweep}: {_rejected} rejected, {_accepted} accepted in {time.Elapsed.TotalSeconds:F1} s");
        Assert.True(_failures.Count == 0, $"{sweep}: {_failures.Count} mutants misbehaved:\n" + string.Join("\n", _failures.Take(10)));
        Assert.True(_rejected > 0 && _accepted > 0, $"{sweep}: {_rejected} rejected, {_accepted} accepted (a sweep should see both)");
        Assert.True(time.Elapsed < Limit, $"{sweep} took {time.Elapsed.TotalSeconds:F1} s");
    }

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir.FullName, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>`kvsharp inspect`, then `kvsharp run -n 3`.</summary>
    private static void InspectAndRun(string path, string? tokenizer = null)
    {
        InspectCommand.Inspect(path, null, false, TextWriter.Null);
        using var model = LlmModel.Load(path, new ModelLoadOptions { TokenizerPath = tokenizer, Threads = 1 });
        using var session = model.CreateSession();
        _ = session.Generate("Once upon", new GenerationOptions { MaxTokens = 3 }).ToList();
    }

    /// <summary>Writes <paramref name="value"/> at a random 4-byte-aligned float in [start, end).</summary>
    private static void PoisonFloat(byte[] b, Random rng, long start, long end, float value)
    {
        long at = start + rng.NextInt64((end - start) / 4) * 4;
        BitConverter.TryWriteBytes(b.AsSpan((int)at), value);
    }

    private static readonly float[] Poisons = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 3e38f];

    /// <summary>Header bytes; and in the data, flipped bytes (a Q4_0 file's block scales among them) or a NaN/Inf float.</summary>
    [Theory]
    [InlineData("stories260K.gguf", 200)]
    [InlineData("llama-gqa.Q4_0.gguf", 100)]
    public void MutatedGgufFiles(string file, int count)
    {
        var time = Stopwatch.StartNew();
        string source = file == "stories260K.gguf" ? StoriesGguf : TestPaths.Fixture(file);
        var original = File.ReadAllBytes(source);
        long dataStart;
        using (var g = GgufFile.Open(source)) dataStart = g.DataOffset;
        var rng = new Random(13);
        for (int i = 0; i < count; i++)
        {
            var b = (byte[])original.Clone();
            string what;
            if (i % 4 == 2)
            {
                for (int k = 0; k < 4; k++) b[dataStart + rng.NextInt64(b.Length - dataStart)] = (byte)rng.Next(256);
                what = $"gguf #{i}: four bytes of tensor data";
            }
            else if (i % 4 == 3)
            {
                float poison = Poisons[rng.Next(Poisons.Length)];
                PoisonFloat(b, rng, dataStart, b.Length, poison);
                what = $"gguf #{i}: {poison} in the tensor data";
            }
            else
            {
                int pos = rng.Next((int)dataStart);
                switch (rng.Next(3))
                {
                    case 0: b[pos] = (byte)rng.Next(256); break;
                    case 1: for (int k = 0; k < 8 && pos + k < dataStart; k++) b[pos + k] = 0xFF; break;
                    default: b[pos] ^= (byte)(1 << rng.Next(8)); break;
                }
                what = $"gguf #{i}: header byte {pos}";
            }
            string path = Write($"m{i}.gguf", b);
            Check(what, () => InspectAndRun(path));
            File.Delete(path);
        }
        AssertClean($"{file} mutants", time);
    }

    /// <summary>Every metadata key of stories260K.gguf stored as each of several other types and values.</summary>
    [Fact]
    public void MetadataValuesOfOtherTypes()
    {
        var time = Stopwatch.StartNew();
        GgufValue[] replacements =
        [
            GgufValue.Of(true), GgufValue.Of(0u), GgufValue.Of(1u << 28), GgufValue.Of(-1), GgufValue.Of(ulong.MaxValue),
            GgufValue.Of(float.NaN), GgufValue.Of(float.PositiveInfinity), GgufValue.Of(1e30f), GgufValue.Of("x\n\u0001y"),
            GgufValue.Of(new[] { 1 }), GgufValue.Of(new[] { "a" }),
        ];
        string[] keys;
        using (var g = GgufFile.Open(StoriesGguf)) keys = [.. g.MetadataKeys];
        foreach (string key in keys)
            foreach (var replacement in replacements)
            {
                string path = GgufRewrite.Rewrite(StoriesGguf, (k, v) => k == key ? replacement : v);
                try
                {
                    Check($"metadata '{key}' = {replacement.Type} {replacement}", () => InspectAndRun(path));
                }
                finally { File.Delete(path); }
            }
        AssertClean("metadata type mutants", time);
    }

    [Fact]
    public void MutatedLlama2cCheckpoints()
    {
        var time = Stopwatch.StartNew();
        var original = File.ReadAllBytes(StoriesBin);
        var rng = new Random(7);
        for (int i = 0; i < 120; i++)
        {
            var b = (byte[])original.Clone();
            string what;
            if (i % 3 == 2)
            {
                float poison = Poisons[rng.Next(Poisons.Length)];
                PoisonFloat(b, rng, 28, b.Length, poison);
                what = $"llama2.c #{i}: {poison} in the weights";
            }
            else
            {
                int field = rng.Next(7);
                int old = BitConverter.ToInt32(b, field * 4);
                int value = rng.Next(8) switch
                {
                    0 => 0, 1 => -1, 2 => int.MinValue, 3 => int.MaxValue, 4 => old + 1, 5 => old * 2, 6 => -old,
                    _ => rng.Next(),
                };
                BitConverter.TryWriteBytes(b.AsSpan(field * 4), value);
                what = $"llama2.c #{i}: header field {field} {old} -> {value}";
            }
            string path = Write($"m{i}.bin", b);
            Check(what, () => InspectAndRun(path, Tok512));
            File.Delete(path);
        }
        AssertClean("llama2.c mutants", time);
    }

    [Fact]
    public void MutatedTokenizerBins()
    {
        var time = Stopwatch.StartNew();
        var original = File.ReadAllBytes(Tok512);
        var rng = new Random(5);
        for (int i = 0; i < 120; i++)
        {
            byte[] b;
            string what;
            if (i % 6 == 5)
            {
                int length = rng.Next(original.Length);
                b = original[..length];
                what = $"tokenizer #{i}: truncated to {length} bytes";
            }
            else
            {
                b = (byte[])original.Clone();
                int pos = rng.Next(b.Length);
                b[pos] = (byte)rng.Next(256);
                what = $"tokenizer #{i}: byte {pos}";
            }
            string path = Write($"t{i}.bin", b);
            Check(what, () =>
            {
                var tokenizer = Llama2cTokenizerReader.Load(path);
                _ = tokenizer.Decode(tokenizer.Encode("Once upon a time, Lily saw a bird.", addSpecial: true, parseSpecial: true));
                if (i % 4 == 0) InspectAndRun(StoriesBin, path);
            });
            File.Delete(path);
        }
        AssertClean("tokenizer.bin mutants", time);
    }
}
