
namespace KvSharp.Models;

/// <summary>Which logits a batch segment wants back.</summary>
public enum LogitsRequest
{
    None,
    /// <summary>Only the segment's last token (what decoding and the end of a prefill need).</summary>
    Last,
    /// <summary>Every token of the segment (scoring, the logits command, tests).</summary>
    All,
}

/// <summary>
/// A run of consecutive tokens of one sequence inside a batched forward step: they are appended to
/// <see cref="Store"/> at positions Store.Length onwards. Several segments (one per sequence) share the step's
/// matrix multiplications, so each weight is read once for all of them.
/// </summary>
public readonly record struct BatchSegment(IKvStore Store, int TokenCount, LogitsRequest Logits)
{
    public int LogitRows => Logits switch { LogitsRequest.All => TokenCount, LogitsRequest.Last => 1, _ => 0 };
}
