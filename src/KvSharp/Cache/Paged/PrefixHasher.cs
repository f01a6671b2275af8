namespace KvSharp.Cache.Paged;

/// <summary>
/// Hashes one full block of token ids chained to its parent's hash, so a block's hash names its whole prefix.
/// The chain is seeded with the model's identity and an optional tenant salt: different models or tenants never
/// share blocks. A hit is always confirmed by comparing tokens, so a collision costs a recompute, never a wrong answer.
/// </summary>
public delegate ulong BlockHashFunction(ulong parentHash, ReadOnlySpan<int> tokens);

public static class PrefixHasher
{
    /// <summary>The default block hash: a 64-bit multiply-xorshift mix over the parent hash and the token ids.</summary>
    public static ulong Hash(ulong parentHash, ReadOnlySpan<int> tokens)
    {
        ulong h = parentHash ^ 0x9E3779B97F4A7C15UL;
        foreach (int t in tokens) h = Mix(h ^ (uint)t);
        return Mix(h ^ (ulong)tokens.Length);
    }

    /// <summary>The root of a chain: model identity and tenant salt.</summary>
    public static ulong Seed(string modelIdentity, string? salt)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in modelIdentity) h = Mix(h ^ c);
        h = Mix(h ^ 0xFF);
        foreach (char c in salt ?? "") h = Mix(h ^ c);
        return Mix(h ^ (salt == null ? ulong.MaxValue : (ulong)salt.Length));
    }

    private static ulong Mix(ulong x)
    {
        x ^= x >> 33;
        x *= 0xFF51AFD7ED558CCDUL;
        x ^= x >> 33;
        x *= 0xC4CEB9FE1A85EC53UL;
        x ^= x >> 33;
        return x;
    }
}
