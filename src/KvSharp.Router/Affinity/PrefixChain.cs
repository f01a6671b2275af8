using KvSharp.Cache.Paged;

namespace KvSharp.Router.Affinity;

/// <summary>
/// The hash chain of a prompt's full text blocks: hash i names blocks 0..i, exactly as the engines name their KV
/// blocks (<see cref="PrefixHasher"/>, seeded with the tenant salt), only over UTF-16 characters instead of token ids,
/// so the router needs no model. Two prompts that share their first k full blocks share their first k hashes; a
/// later turn of a conversation extends the chain of the earlier one. A prompt shorter than one block gets one hash
/// of its whole text, so short prompts are still spread over the ring.
/// </summary>
public static class PrefixChain
{
    private const string Identity = "kvsharp-router/text-blocks";

    /// <summary>Fills <paramref name="hashes"/> (at least one entry) and returns how many it wrote.</summary>
    public static int Compute(PromptText prompt, int blockChars, Span<ulong> hashes)
    {
        if (hashes.IsEmpty) throw new ArgumentException("room for at least one hash is needed", nameof(hashes));
        ulong h = PrefixHasher.Seed(Identity, prompt.Salt);
        string text = prompt.Text ?? "";
        int full = Math.Min(text.Length / blockChars, hashes.Length);
        if (full == 0)
        {
            Span<int> whole = text.Length <= 256 ? stackalloc int[text.Length] : new int[text.Length];
            for (int j = 0; j < text.Length; j++) whole[j] = text[j];
            hashes[0] = PrefixHasher.Hash(h, whole);
            return 1;
        }
        Span<int> block = blockChars <= 1024 ? stackalloc int[blockChars] : new int[blockChars];
        for (int i = 0; i < full; i++)
        {
            var chars = text.AsSpan(i * blockChars, blockChars);
            for (int j = 0; j < chars.Length; j++) block[j] = chars[j];
            h = PrefixHasher.Hash(h, block);
            hashes[i] = h;
        }
        return full;
    }
}
