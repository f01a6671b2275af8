using KvSharp.Models;

namespace KvSharp.Tests.Models;

/// <summary>Feeds a sequence through a store in steps of given sizes, as prefill chunks and decode steps would.</summary>
public static class SteppedLogits
{
    /// <summary>Every token's logits, <paramref name="tokens"/> fed in steps of <paramref name="steps"/> tokens (cycled) through <paramref name="store"/>.</summary>
    public static float[] Run(ForwardPass forward, IKvStore store, ReadOnlySpan<int> tokens, int vocab, params int[] steps)
    {
        var logits = new float[tokens.Length * vocab];
        for (int at = 0, i = 0; at < tokens.Length; i++)
        {
            int count = Math.Min(steps[i % steps.Length], tokens.Length - at);
            forward.Forward(tokens.Slice(at, count), store, logits.AsSpan(at * vocab, count * vocab), allLogits: true);
            at += count;
        }
        return logits;
    }
}
