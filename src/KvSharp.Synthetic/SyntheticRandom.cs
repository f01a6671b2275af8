namespace KvSharp.Synthetic;

/// <summary>
/// SplitMix64 with Box-Muller normals: small, fast and fully determined by its seed. Every matrix row gets its own
/// generator seeded from (model seed, tensor name, row), so rows can be generated in parallel in any order and the
/// file is still byte-for-byte the same.
/// </summary>
internal struct SyntheticRandom
{
    private ulong _state;
    private float _spare;
    private bool _hasSpare;

    public SyntheticRandom(ulong seed)
    {
        _state = seed;
        _spare = 0;
        _hasSpare = false;
    }

    /// <summary>A generator for one row of one tensor.</summary>
    public static SyntheticRandom ForRow(ulong seed, string tensor, long row)
    {
        ulong h = 14695981039346656037UL; // FNV-1a over the tensor name
        foreach (char c in tensor) h = (h ^ c) * 1099511628211UL;
        ulong s = seed;
        s = Mix(s ^ h);
        s = Mix(s ^ (ulong)row * 0x9E3779B97F4A7C15UL);
        return new SyntheticRandom(s);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform in (0, 1]: never 0, so the logarithm below is finite.</summary>
    public double NextDoubleNonZero() => ((NextUInt64() >> 11) + 1) * (1.0 / (1UL << 53));

    /// <summary>A standard normal sample.</summary>
    public float NextNormal()
    {
        if (_hasSpare)
        {
            _hasSpare = false;
            return _spare;
        }
        double r = Math.Sqrt(-2.0 * Math.Log(NextDoubleNonZero()));
        var (sin, cos) = Math.SinCos(2 * Math.PI * NextDoubleNonZero());
        _spare = (float)(r * sin);
        _hasSpare = true;
        return (float)(r * cos);
    }

    /// <summary>Uniform integer in [min, max).</summary>
    public int NextInt(int min, int max) => min + (int)(NextUInt64() % (ulong)(max - min));
}
