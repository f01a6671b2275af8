using System.IO.Hashing;
using System.Runtime.InteropServices;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Persistence;

/// <summary>
/// What identifies the model whose keys and values a saved session or a tier block holds: its architecture, its shape
/// (every hyperparameter of <see cref="ModelConfig"/> but the display name), its tensor types, and
/// <see cref="TensorHash"/>, an XxHash64 over every weight tensor's metadata and size (type, rows, columns, bytes) plus
/// a sample of its data: the first and last <see cref="SampledBytes"/> bytes of each weight matrix and every norm and
/// bias vector whole. Hashing all the data would read gigabytes per save; the sample still tells apart two files of
/// one shape trained (or seeded) differently, which metadata alone would not.
/// </summary>
public sealed record ModelFingerprint(string Architecture, string Shape, string TensorTypes, ulong TensorHash)
{
    /// <summary>Bytes hashed at each end of every weight matrix.</summary>
    public const int SampledBytes = 4096;

    public static unsafe ModelFingerprint Of(ModelConfig config, ModelWeights weights)
    {
        var hash = new XxHash64();
        var types = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Matrix(WeightMatrix m)
        {
            string type = m.Type.ToString().ToLowerInvariant();
            types[type] = types.GetValueOrDefault(type) + 1;
            Span<long> meta = [(long)m.Type, m.Rows, m.Cols, m.TotalBytes];
            hash.Append(MemoryMarshal.AsBytes(meta));
            long sample = Math.Min(SampledBytes, m.TotalBytes);
            hash.Append(new ReadOnlySpan<byte>(m.Data, (int)sample));
            hash.Append(new ReadOnlySpan<byte>(m.Data + m.TotalBytes - sample, (int)sample));
        }
        void Vector(float[]? v)
        {
            Span<long> length = [v?.Length ?? -1];
            hash.Append(MemoryMarshal.AsBytes(length));
            if (v != null) hash.Append(MemoryMarshal.AsBytes(v.AsSpan()));
        }
        Matrix(weights.TokenEmbedding);
        foreach (var layer in weights.Layers)
        {
            Vector(layer.AttentionNorm);
            foreach (var m in layer.Matrices()) Matrix(m);
            Vector(layer.QueryBias);
            Vector(layer.KeyBias);
            Vector(layer.ValueBias);
            // Only where present, so the fingerprints of models without q/k norms stay what they were.
            if (layer.QueryNorm != null || layer.KeyNorm != null)
            {
                Vector(layer.QueryNorm);
                Vector(layer.KeyNorm);
            }
            if (layer.OutputBias != null) Vector(layer.OutputBias);
            Vector(layer.FeedForwardNorm);
            if (layer.AttentionPostNorm != null || layer.FeedForwardPostNorm != null)
            {
                Vector(layer.AttentionPostNorm);
                Vector(layer.FeedForwardPostNorm);
            }
        }
        Vector(weights.OutputNorm);
        Matrix(weights.Output);
        Vector(weights.RopeFrequencyFactors);
        return new ModelFingerprint(config.Architecture, (config with { Name = "" }).ToString(),
            string.Join(", ", types.Select(t => $"{t.Key} x{t.Value}")), hash.GetCurrentHashAsUInt64());
    }

    public static ModelFingerprint Of(LlmModel model) => Of(model.Config, model.Weights);

    /// <summary>The first field in which <paramref name="other"/> differs, as "field: 'this' vs 'other'", or null if none does.</summary>
    public string? FirstDifference(ModelFingerprint other) =>
        Architecture != other.Architecture ? $"architecture '{Architecture}' vs '{other.Architecture}'"
        : Shape != other.Shape ? $"shape {ShapeDifference(Shape, other.Shape)}"
        : TensorTypes != other.TensorTypes ? $"tensor types '{TensorTypes}' vs '{other.TensorTypes}'"
        : TensorHash != other.TensorHash ? $"tensor hash {TensorHash:x16} vs {other.TensorHash:x16} (same shape and types, different weights)"
        : null;

    /// <summary>
    /// Only the hyperparameters that differ ("TrainedContextLength 128 vs 512"): the whole shape is two 400-character
    /// records in which a reader would have to find the one changed field.
    /// </summary>
    private static string ShapeDifference(string shape, string other)
    {
        var a = ShapeFields(shape);
        var b = ShapeFields(other);
        var differences = a.Keys.Union(b.Keys).Where(k => a.GetValueOrDefault(k) != b.GetValueOrDefault(k))
            .Select(k => $"{k} {a.GetValueOrDefault(k) ?? "(absent)"} vs {b.GetValueOrDefault(k) ?? "(absent)"}").ToArray();
        return differences.Length == 0 ? $"{shape} vs {other}" : string.Join(", ", differences);
    }

    /// <summary>"ModelConfig { A = 1, B = , C = x }" (a record's ToString) as its fields.</summary>
    private static Dictionary<string, string> ShapeFields(string shape) =>
        System.Text.RegularExpressions.Regex.Matches(shape, @"(\w+) = (.*?)(?=, \w+ = | \}$)")
            .GroupBy(m => m.Groups[1].Value).ToDictionary(g => g.Key, g => g.First().Groups[2].Value);
}
