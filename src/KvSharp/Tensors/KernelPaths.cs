using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// The one place that decides which kernel path (<see cref="KernelPath"/>) each weight type runs on: by default the
/// fastest this CPU and .NET expose for that type; the environment variable KVSHARP_ISA=scalar|avx2|avx2-vnni|avx512
/// caps every type at one path (a type without kernels on that path runs AVX2), and KVSHARP_VNNI=0 keeps the default
/// choice off AVX-VNNI. Tests force a path with <see cref="Force"/>.
/// </summary>
public static class KernelPaths
{
    /// <summary>The environment variable that picks a path for every weight type.</summary>
    public const string IsaVariable = "KVSHARP_ISA";

    private static readonly bool s_avx2 = Avx2.IsSupported && Fma.IsSupported;
    private static readonly bool s_noVnni = Environment.GetEnvironmentVariable("KVSHARP_VNNI") == "0";
    private static KernelPath? s_fromEnvironment;
    private static volatile bool s_environmentRead; // set after s_fromEnvironment, so a reader that sees it sees the path
    private static volatile int s_forced = -1;

    /// <summary>Whether this machine can run <paramref name="path"/>.</summary>
    public static bool IsAvailable(KernelPath path) => path switch
    {
        KernelPath.Scalar => true,
        KernelPath.Avx2 => s_avx2,
        KernelPath.Avx2Vnni => s_avx2 && AvxVnni.IsSupported,
        KernelPath.Avx512 => s_avx2 && Avx512F.IsSupported && Avx512BW.IsSupported,
        _ => false,
    };

    /// <summary>The paths this machine can run, slowest first.</summary>
    public static IReadOnlyList<KernelPath> Available { get; } = Enum.GetValues<KernelPath>().Where(IsAvailable).ToArray();

    /// <summary>
    /// The path every type is capped at: the one forced by a test, else KVSHARP_ISA's, else null (each type its fastest).
    /// </summary>
    public static KernelPath? Requested
    {
        get
        {
            int forced = s_forced;
            return forced >= 0 ? (KernelPath)forced : FromEnvironment();
        }
    }

    /// <summary>The path weights of <paramref name="type"/> run on now.</summary>
    public static KernelPath For(GgmlType type) => For(type, Requested);

    /// <summary>The path weights of <paramref name="type"/> run on under <paramref name="requested"/> (see <see cref="Requested"/>).</summary>
    public static KernelPath For(GgmlType type, KernelPath? requested)
    {
        if (requested is KernelPath cap)
        {
            return cap switch
            {
                KernelPath.Scalar => KernelPath.Scalar,
                KernelPath.Avx2Vnni when HasVnniKernels(type) => KernelPath.Avx2Vnni,
                KernelPath.Avx512 when HasAvx512Kernels(type) => KernelPath.Avx512,
                _ => KernelPath.Avx2,
            };
        }
        return Default(type, int.MaxValue);
    }

    /// <summary>
    /// The fastest path measured for products of <paramref name="type"/> over <paramref name="tokens"/> activation rows,
    /// among those this machine has. .NET 10 exposes no 512-bit VNNI, so where a CPU has both AVX-VNNI and AVX-512 (Zen 5,
    /// some Zen 4 hosts, Sapphire Rapids) a type can have kernels on both; which wins was measured per type and product
    /// size on Zen 5 (AMD EPYC family 26 model 2; on a Zen 4, whose 512-bit instructions take two passes, AVX-512 would
    /// win less often), by in-process A/B of the same interleaved matrix, one thread, bit-identical outputs:
    /// `bench interleaved 31 TYPE 2048x768 T paths A B`, and 32768x768 for one token streaming its weights;
    /// docs/benchmarks.md "Tenth session"). Time on AVX-512 over time on VNNI:
    /// <list type="bullet">
    /// <item>Q8_0: 1.08-1.14x at 8 and 64 tokens, 1.34x at one, 1.60x streaming: VNNI at every size (its one vpdpbusd
    /// does the sign trick's three instructions' work per 32 byte pairs);</item>
    /// <item>Q4_0: 0.68-0.69x at 8 and 64 tokens (a 64-byte vpmaddubsw at full width on Zen 5 against two 32-byte
    /// vpdpbusd): AVX-512 at every size. One token was 0.96x from cache and 1.11x streaming in the tenth session, so
    /// decode ran VNNI; measured again in the fourteenth (the same host class, `DOTNET_TieredCompilation=0`) it was
    /// 0.93-0.96x from cache and 1.01x streaming, and whole decode steps in one process (`bench profile-step R T 1 Q4_0 paths avx512 default [shape]`,
    /// same logits) took 0.75-0.78x the time on the SmolLM2-135M shape on two threads (0.92x on one) and 0.91-1.00x on
    /// `small`. Why the shapes differ was not measured (asking for weights ahead is not it: the same requests added to
    /// Q4_K's VNNI one-token kernel changed its SmolLM2 step by 0.997-1.000x);</item>
    /// <item>Q5_0 (the fourteenth session's pair kernel: Q4_0's with the fifth bits from the plane
    /// <see cref="InterleavedRows.FifthBitPlane"/> keeps): 0.81x at 8 tokens, 0.79x at 64, 0.89x one token from cache;
    /// whole decode steps (`profile-step`, same logits) 0.81x at 16 sequences, 0.91-0.95x one sequence on `small`, and
    /// 0.79-0.87x on the SmolLM2-135M shape's "Q4_K" file, whose rows of 576 are Q5_0: AVX-512 at every size. Not
    /// measured on Zen 4, which takes it too;</item>
    /// <item>Q4_1 and Q5_1 (the same pair kernels with the mins' fma, Q8_1 activations): from cache one token 0.88x and
    /// 0.93x, 8 tokens 0.70x and 0.81x, 64 tokens 0.69x and 0.79x; whole decode steps 0.90-0.96x (Q4_1) and 0.88x (Q5_1)
    /// one sequence on `small`, 0.68x and 0.75x on the SmolLM2 shape, 0.76-0.77x and 0.82-0.85x at 16 sequences:
    /// AVX-512 at every size. Not measured on Zen 4 either. (Kernel figures with `DOTNET_TieredCompilation=0`: a run of
    /// `bench interleaved` is too short for the kernels to leave tier 0 otherwise.)</item>
    /// <item>IQ4_NL: 1.03x at 8 and 64 tokens, 0.71-0.73x at one: AVX-512 (its VNNI kernels serve CPUs with AVX-VNNI
    /// and no AVX-512);</item>
    /// <item>MXFP4 (IQ4_NL's kernels with the E8M0 scale bytes, <see cref="INibbleLevels"/>): on gpt-oss's 2880 x 2880,
    /// two threads, paired copy, in-process rounds (`bench variants R 2880x2880 T 2`, 2-core Zen 5, weights from L3): AVX-512
    /// 0.58-0.62x VNNI's time at one token and 0.83x at 64: AVX-512 at every size, as IQ4_NL;</item>
    /// <item>Q4_K and Q5_K: their VNNI path has one-token kernels only (four tokens on vpdpbusd ran slower than
    /// vpmaddubsw, see VecDotAvx2Interleaved.QuantKx4), 1.13-1.19x the AVX2 ones; over four tokens the AVX-512 pair
    /// kernels run 1.31-1.60x the AVX2 ones: AVX-512 for prefill, VNNI for decode.</item>
    /// <item>Q6_K: likewise a VNNI one-token kernel only (VecDotAvx2Interleaved.Q6_Kx1Vnni), 1.37x the AVX2 one from
    /// cache and 1.14x streamed on one thread (2048x768 and 32768x768, 201 rounds); a 512-bit one-token kernel over
    /// pairs of groups ran 1.30x slower than AVX2 from cache (its two-group loads cost a vinserti per vector) and was
    /// not kept: AVX-512 for prefill, VNNI for decode, AVX2 for decode where VNNI is absent.</item>
    /// <item>F16 and BF16 over several tokens: a work item's rows widened once on both paths, then four rows by four
    /// tokens in 512-bit vectors (<see cref="VecDotAvx512Widened"/>) or three by four in 256-bit ones
    /// (<see cref="VecDotAvx2Widened"/>); 128 tokens by four 2048x768 matrices, one thread, in-process rounds
    /// (`paths 15 2048x768 128 1 F16 4`, 2-core Zen 5): AVX-512 1.70x AVX2's speed for F16, 1.67x for BF16. One token:
    /// F16 on AVX-512 (<see cref="VecDotAvx512F16"/>: its widening took a third of the AVX2 kernel's instructions while
    /// F16 decode was bound by widening; 64 matrices of 2048x768, 201 MB, two threads, in-process rounds, `paths 41
    /// 2048x768 1 2 F16 64`: 1.39-1.43x AVX2's, 2-core Zen 5. Since the AVX2 kernel widens scaled
    /// (<see cref="VecDotAvx2F16.DotScaled"/>) the two read at the same speed, 0.99-1.00x on one thread and on two,
    /// both bound by memory), BF16 on AVX2 (a shift widens it).</item>
    /// </list>
    /// A type with no AVX-512 kernels runs VNNI where it has kernels there (AVX2 / VNNI time: Q4_1, Q5_0, Q5_1
    /// 1.12-1.38x, which is what CPUs with AVX-VNNI and no AVX-512 run for them), else AVX2. A one-token product of a type <see cref="OneTokenStaysOnAvx2"/> names runs AVX2 rather
    /// than AVX-512 where no VNNI kernel takes it (Zen 4, KVSHARP_VNNI=0, F32).
    /// </summary>
    private static KernelPath Default(GgmlType type, int tokens)
    {
        if (!s_avx2) return KernelPath.Scalar;
        bool vnni = HasVnniKernels(type) && IsAvailable(KernelPath.Avx2Vnni) && !s_noVnni;
        bool avx512 = HasAvx512Kernels(type) && IsAvailable(KernelPath.Avx512);
        if (vnni && (!avx512 || VnniBeforeAvx512(type, tokens))) return KernelPath.Avx2Vnni;
        if (avx512 && !(tokens == 1 && OneTokenStaysOnAvx2(type))) return KernelPath.Avx512;
        return KernelPath.Avx2;
    }

    /// <summary>Where both paths have kernels, whether VNNI was measured faster (see <see cref="Default"/>).</summary>
    private static bool VnniBeforeAvx512(GgmlType type, int tokens) => type == GgmlType.Q8_0 || (type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K && tokens == 1);

    /// <summary>
    /// The path for one product over <paramref name="tokens"/> activation rows: the one asked for
    /// (<see cref="For(GgmlType, KernelPath?)"/>), else the fastest measured for that size (<see cref="Default"/>: a
    /// one-row product, one-token decode, can run another path than prefill). Every path gives the same bits, so
    /// mixing them keeps batch invariance.
    /// </summary>
    public static KernelPath For(GgmlType type, KernelPath? requested, int tokens)
        => requested == null ? Default(type, tokens) : For(type, requested);

    /// <summary>The path a weight type runs on, as reports name it: one name, or "avx512 prefill, avx2 decode" where they differ.</summary>
    public static string Describe(GgmlType type)
    {
        KernelPath many = For(type, Requested, int.MaxValue), one = For(type, Requested, 1);
        return many == one ? Name(many) : $"{Name(many)} prefill, {Name(one)} decode";
    }

    /// <summary>
    /// Whether one-token products of <paramref name="type"/> run the AVX2 kernel by default rather than AVX-512 (where
    /// no VNNI kernel takes them): Q8_0's, and those of Q4_K, Q5_K, Q6_K and F32, whose AVX-512 kernels take four tokens
    /// or more (a one-token product of theirs on the AVX-512 path would run the one-group AVX2 kernels anyway; naming
    /// them here makes reports say so). For Q8_0: both Q8_0 and Q4_0 did while the 512-bit one-token kernels streamed
    /// their weights worse than the 256-bit ones (Zen 4,
    /// 2026-12-05: one-token decode about 220 against 155 tokens/s for Q8_0, 330 against 235 for Q4_0). With the next
    /// pair of groups prefetched, Q4_0's runs 2.4x faster than before and at or above AVX2 in alternated runs on a
    /// shared 2-core Zen 4; Q8_0's was level with AVX2 there, so it stays (issue 18; to be measured on a quiet machine).
    /// The AVX2 one-token kernels take no such prefetch: in-process A/B on Zen 4 restricted to AVX2 (62 MB of a
    /// stories110M-sized model's matrices per token, 300 interleaved rounds), prefetching one or two groups ahead into
    /// L1 or L2, or 1-4 KiB ahead, ran 0.80-0.98x for Q4_0 single-threaded (2 threads: 0.91-1.19x over four runs),
    /// 0.90-1.00x for Q8_0 and 0.78-0.90x for Q4_K; a kernel that only loads the same bytes is just 1.02-1.15x faster
    /// than them, so they already stream weights about as fast as a core is fed here.
    /// Measured again for issue 18 over the `small` model's whole set of matrices (116 MB Q8_0, 62 MB Q4_0), in one
    /// process, interleaved, 200-300 rounds, medians of per-round ratios, on a busy shared 2-core Zen 4: the AVX-512
    /// pair kernel against the AVX2 one, Q8_0 0.86-0.93x on one thread and 0.87-0.92x on two, Q4_0 0.92-0.96x and
    /// 0.88-1.06x (on huge pages, <see cref="HugePageSlabs"/>: Q8_0 0.83-0.92x, Q4_0 0.73-1.05x). Q8_0 stays on AVX2; Q4_0 keeps AVX-512, whose decode reached 0.87-0.99 of the bandwidth probe on
    /// a quiet machine where Q8_0 on AVX2 reached 0.73-0.80, until OneTokenStreamBenchmarks (bench/) is run there.
    /// </summary>
    public static bool OneTokenStaysOnAvx2(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.F32 or GgmlType.BF16;

    /// <summary>Whether <see cref="KernelPath.Avx2Vnni"/> has kernels of its own for <paramref name="type"/>: Q8_0, IQ4_NL, MXFP4, Q4_K, Q5_K, Q6_K and the nibble types.</summary>
    public static bool HasVnniKernels(GgmlType type)
        => type is GgmlType.Q8_0 or GgmlType.IQ4_NL or GgmlType.MXFP4 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K || VecDotAvx2Interleaved.IsNibbleType(type);

    /// <summary>Whether <see cref="KernelPath.Avx512"/> has kernels of its own for <paramref name="type"/>.</summary>
    public static bool HasAvx512Kernels(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.IQ4_NL or GgmlType.MXFP4 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.F32
        or GgmlType.F16 or GgmlType.BF16;

    /// <summary>True when any SIMD path runs (everything but <see cref="KernelPath.Scalar"/>).</summary>
    internal static bool UsesSimd => s_avx2 && Requested != KernelPath.Scalar;

    /// <summary>
    /// Runs everything on <paramref name="path"/> (which must be available) until the returned scope is disposed, which
    /// restores the previous choice. For tests and benchmarks; not thread-safe against concurrent forcing.
    /// </summary>
    internal static IDisposable Force(KernelPath path)
    {
        if (!IsAvailable(path))
            throw new PlatformNotSupportedException($"KernelPaths: {Name(path)} is not available on this machine (available: {string.Join(", ", Available.Select(Name))})");
        int previous = s_forced;
        s_forced = (int)path;
        return new Restore(previous);
    }

    private sealed class Restore(int previous) : IDisposable
    {
        public void Dispose() => s_forced = previous;
    }

    /// <summary>The name KVSHARP_ISA and the bench output use: scalar, avx2, avx2-vnni, avx512.</summary>
    public static string Name(KernelPath path) => path switch
    {
        KernelPath.Scalar => "scalar",
        KernelPath.Avx2 => "avx2",
        KernelPath.Avx2Vnni => "avx2-vnni",
        KernelPath.Avx512 => "avx512",
        _ => path.ToString(),
    };

    /// <summary>Reads a path name (<see cref="Name"/>); <paramref name="source"/> names where it came from for the error.</summary>
    public static KernelPath Parse(string value, string source)
    {
        foreach (var path in Enum.GetValues<KernelPath>())
            if (string.Equals(Name(path), value.Trim(), StringComparison.OrdinalIgnoreCase)) return path;
        throw new ArgumentException($"{source}: '{value}' is not a kernel path (scalar, avx2, avx2-vnni, avx512)");
    }

    /// <summary>KVSHARP_ISA, read once; an unknown or unavailable path is an error naming the variable.</summary>
    private static KernelPath? FromEnvironment()
    {
        if (s_environmentRead) return s_fromEnvironment;
        string? value = Environment.GetEnvironmentVariable(IsaVariable);
        KernelPath? path = null;
        if (!string.IsNullOrWhiteSpace(value))
        {
            path = Parse(value, IsaVariable);
            if (!IsAvailable(path.Value))
                throw new PlatformNotSupportedException($"{IsaVariable}={value}: this CPU or .NET does not expose it (available: {string.Join(", ", Available.Select(Name))})");
        }
        s_fromEnvironment = path;
        s_environmentRead = true;
        return path;
    }
}
