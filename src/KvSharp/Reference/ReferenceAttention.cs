namespace KvSharp.Reference;

/// <summary>
/// Attention of one query head, the textbook way: scores for every key, a softmax over all of them, a weighted sum
/// of the values, all in double. <see cref="Attention.CausalAttention"/> computes the same thing in float, tile by
/// tile with an online softmax; tests hold it to this.
/// </summary>
public static class ReferenceAttention
{
    /// <summary>
    /// output = softmax(query · keys[0..length)ᵀ · scale) · values[0..length). Row j of <paramref name="keys"/> and
    /// <paramref name="values"/> (query.Length floats each) is position j; a query at position p reads length = p + 1
    /// rows, and not reading the rows after it is the whole causal mask.
    /// </summary>
    /// <param name="softCap">Gemma 2's soft-capping: each score s becomes cap x tanh(s / cap) before the softmax; 0 for none.</param>
    /// <param name="sinkLogit">gpt-oss's learned sink: one more softmax column with no value behind it; null for none.</param>
    public static void Attend(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int length, double scale, Span<float> output, double softCap = 0, double? sinkLogit = null)
    {
        int d = query.Length;
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length), length, "a query attends to at least itself");
        if (keys.Length < length * d || values.Length < length * d || output.Length < d)
            throw new ArgumentException($"{length} rows of {d} need {length * d} floats; keys hold {keys.Length}, values {values.Length}, output {output.Length} (needs {d})");

        var weights = Weights(query, keys, length, scale, out double sum, softCap, sinkLogit);

        // The output is the average of the values, weighted by the softmax.
        for (int i = 0; i < d; i++)
        {
            double o = 0;
            for (int j = 0; j < length; j++) o += weights[j] * values[j * d + i];
            output[i] = (float)(o / sum);
        }
    }

    /// <summary>
    /// softmax(query · keys[0..length)ᵀ · scale): the share of the query's attention each position gets (what H2O
    /// accumulates and SnapKV's observation queries vote with).
    /// </summary>
    public static double[] Probabilities(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, int length, double scale)
    {
        var weights = Weights(query, keys, length, scale, out double sum);
        for (int j = 0; j < length; j++) weights[j] /= sum;
        return weights;
    }

    /// <summary>exp(score - max score) per position, and their sum (with the sink's exp(sink - max) where there is one).</summary>
    private static double[] Weights(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, int length, double scale, out double sum,
        double softCap = 0, double? sinkLogit = null)
    {
        int d = query.Length;
        // How well each position's key matches the query. Subtracting the largest score before exp changes nothing
        // mathematically and keeps exp from overflowing.
        var weights = new double[length];
        double max = double.NegativeInfinity;
        for (int j = 0; j < length; j++)
        {
            weights[j] = Dot(query, keys.Slice(j * d, d)) * scale;
            if (softCap > 0) weights[j] = softCap * Math.Tanh(weights[j] / softCap);
            max = Math.Max(max, weights[j]);
        }
        if (sinkLogit is double sink) max = Math.Max(max, sink);
        sum = sinkLogit is double s ? Math.Exp(s - max) : 0;
        for (int j = 0; j < length; j++) sum += weights[j] = Math.Exp(weights[j] - max);
        return weights;
    }

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }
}
