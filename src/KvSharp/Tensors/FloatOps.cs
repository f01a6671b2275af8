using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// The small float kernels of the forward pass, each written to give llama.cpp's (ggml CPU, AVX2) result: same
/// operations in the same order. The AVX2 and portable paths are bit-identical (tests check it).
/// </summary>
public static class FloatOps
{
    private static bool UseAvx2 => VecDot.UseAvx2;

    /// <summary>
    /// dst = x / sqrt(mean(x²) + eps) * weight, as ggml_rms_norm followed by ggml_mul: the sum of squares is
    /// accumulated in double in index order, the mean rounded to float, scale = 1/sqrtf(mean+eps), then
    /// (x*scale)*weight with two roundings. dst may alias x.
    /// </summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> dst)
    {
        if (weight.Length < x.Length) throw new ArgumentException($"RmsNorm: weight has {weight.Length} elements, x has {x.Length}", nameof(weight));
        if (dst.Length < x.Length) throw new ArgumentException($"RmsNorm: dst has {dst.Length} elements, x has {x.Length}", nameof(dst));
        ScaleRow(x, weight, RmsScale(x, eps), dst);
    }

    /// <summary>dst = (x * scale) * weight, two roundings per element (ggml_rms_norm's scale, then ggml_mul).</summary>
    private static void ScaleRow(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float scale, Span<float> dst)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vs = new Vector<float>(scale);
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x);
            var wv = MemoryMarshal.Cast<float, Vector<float>>(weight[..x.Length]);
            var dv = MemoryMarshal.Cast<float, Vector<float>>(dst[..x.Length]);
            for (int k = 0; k < xv.Length; k++) dv[k] = xv[k] * vs * wv[k];
            i = xv.Length * Vector<float>.Count;
        }
        for (; i < x.Length; i++) dst[i] = x[i] * scale * weight[i];
    }

    /// <summary>
    /// <see cref="RmsNorm(ReadOnlySpan{float}, ReadOnlySpan{float}, float, Span{float})"/> of each of the consecutive
    /// rows of <paramref name="dim"/> floats in <paramref name="x"/>, into the same rows of <paramref name="dst"/>. Each
    /// row's sum of squares is one chain of double adds in index order (that order is what gives ggml's bits), about
    /// four cycles an element; four rows' chains run side by side, so a batch of rows costs about a quarter of them one
    /// after another. Every row gets exactly the single-row bits.
    /// </summary>
    public static void RmsNormRows(ReadOnlySpan<float> x, int dim, ReadOnlySpan<float> weight, float eps, Span<float> dst)
    {
        if (dim <= 0 || x.Length % dim != 0) throw new ArgumentException($"RmsNormRows: {x.Length} floats are not whole rows of {dim}", nameof(x));
        if (dst.Length < x.Length) throw new ArgumentException($"RmsNormRows: dst has {dst.Length} elements, x has {x.Length}", nameof(dst));
        if (weight.Length < dim) throw new ArgumentException($"RmsNormRows: weight has {weight.Length} elements, a row {dim}", nameof(weight));
        int rows = x.Length / dim, r = 0;
        for (; r + 4 <= rows; r += 4)
        {
            var row = x.Slice(r * dim, 4 * dim);
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int i = 0; i < dim; i++)
            {
                float v0 = row[i], v1 = row[dim + i], v2 = row[2 * dim + i], v3 = row[3 * dim + i];
                s0 += v0 * v0;
                s1 += v1 * v1;
                s2 += v2 * v2;
                s3 += v3 * v3;
            }
            ScaleRow(row[..dim], weight, RmsScale(s0, dim, eps), dst.Slice(r * dim, dim));
            ScaleRow(row.Slice(dim, dim), weight, RmsScale(s1, dim, eps), dst.Slice((r + 1) * dim, dim));
            ScaleRow(row.Slice(2 * dim, dim), weight, RmsScale(s2, dim, eps), dst.Slice((r + 2) * dim, dim));
            ScaleRow(row.Slice(3 * dim, dim), weight, RmsScale(s3, dim, eps), dst.Slice((r + 3) * dim, dim));
        }
        for (; r < rows; r++) RmsNorm(x.Slice(r * dim, dim), weight, eps, dst.Slice(r * dim, dim));
    }

    /// <summary>
    /// LayerNorm of each row of <paramref name="dim"/> floats, as ggml_norm then ggml_mul and ggml_add compute it: the
    /// mean (summed in double) subtracted, the result times 1 / sqrt(mean of its squares (summed in double) + eps), then
    /// times <paramref name="weight"/> plus <paramref name="bias"/> (null: none). dst may alias x.
    /// </summary>
    public static void LayerNormRows(ReadOnlySpan<float> x, int dim, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> dst)
    {
        if (dim <= 0 || x.Length % dim != 0) throw new ArgumentException($"LayerNormRows: {x.Length} floats are not whole rows of {dim}", nameof(x));
        if (dst.Length < x.Length) throw new ArgumentException($"LayerNormRows: dst has {dst.Length} elements, x has {x.Length}", nameof(dst));
        if (weight.Length < dim || (!bias.IsEmpty && bias.Length < dim))
            throw new ArgumentException($"LayerNormRows: weight ({weight.Length}) and bias ({bias.Length}) must hold a row of {dim}", nameof(weight));
        for (int r = 0; r < x.Length / dim; r++)
        {
            var row = x.Slice(r * dim, dim);
            var to = dst.Slice(r * dim, dim);
            double sum = 0;
            for (int i = 0; i < dim; i++) sum += row[i];
            float mean = (float)(sum / dim);
            double squares = 0;
            for (int i = 0; i < dim; i++)
            {
                float v = row[i] - mean;
                to[i] = v;
                squares += v * v;
            }
            float scale = 1f / MathF.Sqrt((float)(squares / dim) + eps);
            for (int i = 0; i < dim; i++) to[i] = to[i] * scale * weight[i] + (bias.IsEmpty ? 0f : bias[i]);
        }
    }

    /// <summary>dst = x / sqrt(mean(x²) + eps) (ggml_rms_norm without the weight). dst may alias x.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, float eps, Span<float> dst)
    {
        if (dst.Length < x.Length) throw new ArgumentException($"RmsNorm: dst has {dst.Length} elements, x has {x.Length}", nameof(dst));
        float scale = RmsScale(x, eps);
        for (int i = 0; i < x.Length; i++) dst[i] = x[i] * scale;
    }

    private static float RmsScale(ReadOnlySpan<float> x, float eps)
    {
        double sum = 0;
        foreach (float v in x) sum += v * v; // float square, double sum, index order: ggml_compute_forward_rms_norm_f32
        return RmsScale(sum, x.Length, eps);
    }

    /// <summary>1 / sqrtf(mean + eps) from a row's sum of squares, the mean rounded to float.</summary>
    private static float RmsScale(double sumOfSquares, int length, float eps) => 1.0f / MathF.Sqrt((float)(sumOfSquares / length) + eps);

    /// <summary>
    /// gate = silu(gate) * up, as ggml_silu then ggml_mul: silu(x) = x / (1 + exp(-x)) with ggml's vector expf for
    /// whole groups of 8 and the C library's expf for the tail (as ggml_vec_silu_f32 does).
    /// </summary>
    public static unsafe void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        if (up.Length < gate.Length) throw new ArgumentException($"SwiGlu: up has {up.Length} elements, gate has {gate.Length}", nameof(up));
        int n = gate.Length, i = 0;
        fixed (float* g = gate)
        fixed (float* u = up)
        {
            if (UseAvx2)
            {
                for (; i + 8 <= n; i += 8)
                {
                    Vector256<float> x = Avx.LoadVector256(g + i);
                    Vector256<float> s = Avx.Divide(x, Avx.Add(Vector256.Create(1f), FastExp.Avx2Exp(Avx.Subtract(Vector256<float>.Zero, x))));
                    Avx.Store(g + i, Avx.Multiply(s, Avx.LoadVector256(u + i)));
                }
            }
            else
            {
                for (int end = n & ~7; i < end; i++) g[i] = g[i] / (1f + FastExp.Scalar(0f - g[i])) * u[i];
            }
            for (; i < n; i++) g[i] = g[i] / (1f + MathF.Exp(-g[i])) * u[i];
        }
    }

    /// <summary>
    /// x = cap x tanh(x / cap) for every element (Gemma 2's soft-capping of scores and logits), as ggml computes it:
    /// scale by 1/cap, tanh, scale by cap.
    /// </summary>
    public static void SoftCap(Span<float> x, float cap)
    {
        float inverse = 1f / cap;
        for (int i = 0; i < x.Length; i++) x[i] = MathF.Tanh(x[i] * inverse) * cap;
    }

    /// <summary>dst += src, element-wise.</summary>
    public static void Add(Span<float> dst, ReadOnlySpan<float> src)
    {
        if (src.Length < dst.Length) throw new ArgumentException($"Add: src has {src.Length} elements, dst has {dst.Length}", nameof(src));
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var dv = MemoryMarshal.Cast<float, Vector<float>>(dst);
            var sv = MemoryMarshal.Cast<float, Vector<float>>(src[..dst.Length]);
            for (int k = 0; k < dv.Length; k++) dv[k] += sv[k];
            i = dv.Length * Vector<float>.Count;
        }
        for (; i < dst.Length; i++) dst[i] += src[i];
    }

    /// <summary>dst *= s, element-wise.</summary>
    public static void Scale(Span<float> dst, float s)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var dv = MemoryMarshal.Cast<float, Vector<float>>(dst);
            var vs = new Vector<float>(s);
            for (int k = 0; k < dv.Length; k++) dv[k] *= vs;
            i = dv.Length * Vector<float>.Count;
        }
        for (; i < dst.Length; i++) dst[i] *= s;
    }

    /// <summary>
    /// In-place softmax, as ggml_vec_soft_max_f32 + scaling: subtract the max, exp with ggml's vector expf (tail with
    /// the C library's), sum each group of 8 in float (hsum order) and the groups in double, then multiply by
    /// (float)(1/sum). -inf entries (masked) become 0.
    /// </summary>
    public static unsafe void Softmax(Span<float> x)
    {
        int n = x.Length;
        if (n == 0) return;
        float max = float.NegativeInfinity;
        foreach (float v in x) max = MathF.Max(max, v);
        double sum;
        fixed (float* p = x) sum = SumExp(p, n, max, store: true);
        Scale(x, (float)(1.0 / sum));
    }

    /// <summary>
    /// The sum of exp(p[i] - max) as <see cref="Softmax"/> takes it: ggml's vector expf (the C library's for the tail),
    /// each group of 8 summed in float (hsum order), the groups in double. With <paramref name="store"/>, each exp is
    /// written back in place.
    /// </summary>
    private static unsafe double SumExp(float* p, int n, float max, bool store)
    {
        double sum = 0;
        int i = 0;
        if (UseAvx2)
        {
            for (; i + 8 <= n; i += 8)
            {
                Vector256<float> v = FastExp.Avx2Exp(Avx.Subtract(Avx.LoadVector256(p + i), Vector256.Create(max)));
                if (store) Avx.Store(p + i, v);
                sum += VecDotAvx2.HSum8(v);
            }
        }
        else
        {
            VecDotScalar.Lanes8F v = default;
            for (; i + 8 <= n; i += 8)
            {
                for (int l = 0; l < 8; l++) v[l] = FastExp.Scalar(p[i + l] - max);
                if (store)
                    for (int l = 0; l < 8; l++) p[i + l] = v[l];
                sum += VecDotScalar.HSum8(ref v);
            }
        }
        for (; i < n; i++)
        {
            float v = MathF.Exp(p[i] - max);
            sum += v;
            if (store) p[i] = v;
        }
        return sum;
    }

    /// <summary>
    /// log(sum of exp(x)), computed as <see cref="Softmax"/> sums (the max taken out, ggml's vector expf, groups of 8 in
    /// float, the groups in double) without writing anything: the normalizer of a log-softmax.
    /// </summary>
    public static unsafe float LogSumExp(ReadOnlySpan<float> x)
    {
        int n = x.Length;
        if (n == 0) return float.NegativeInfinity;
        float max = Max(x);
        if (float.IsNegativeInfinity(max)) return max;
        double sum;
        // Only read: the pointer is never written through without store.
        fixed (float* p = x) sum = SumExp(p, n, max, store: false);
        return max + (float)Math.Log(sum);
    }

    /// <summary>The largest element (of finite values: what a NaN gives is unspecified).</summary>
    public static float Max(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            ref float start = ref MemoryMarshal.GetReference(x);
            var m = Vector256.Create(float.NegativeInfinity);
            for (; i + 8 <= x.Length; i += 8) m = Vector256.Max(m, Vector256.LoadUnsafe(ref start, (nuint)i));
            for (int l = 0; l < 8; l++) max = MathF.Max(max, m[l]);
        }
        for (; i < x.Length; i++) max = MathF.Max(max, x[i]);
        return max;
    }

    /// <summary>How many elements of <paramref name="x"/> are greater than <paramref name="value"/>.</summary>
    public static int CountGreater(ReadOnlySpan<float> x, float value)
    {
        int count = 0, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var v = Vector256.Create(value);
            ref float start = ref MemoryMarshal.GetReference(x);
            for (; i + 8 <= x.Length; i += 8)
                count += BitOperations.PopCount(Vector256.GreaterThan(Vector256.LoadUnsafe(ref start, (nuint)i), v).ExtractMostSignificantBits());
        }
        for (; i < x.Length; i++)
            if (x[i] > value) count++;
        return count;
    }

    /// <summary>Rounds every value to the nearest binary16 (ties to even), keeping it as a float: what storing into an F16 KV cache does.</summary>
    public static void RoundToHalf(Span<float> x) => HalfConvert.RoundTrip(x);

    /// <summary>Rounds every value to the nearest bfloat16 (ties to even), keeping it as a float.</summary>
    public static void RoundToBFloat16(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = BlockLayouts.BF16ToFloat(BlockLayouts.FloatToBF16(x[i]));
    }
}
