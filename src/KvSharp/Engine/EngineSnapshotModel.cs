namespace KvSharp.Engine;

/// <summary>
/// The numbers of the KV memory formula for this model and pool: bytes per token = 2 (K and V) x layers x kv_heads x
/// head_dim x bytes per element (fractional for block-quantised types, whose scales ride along), and what the budget
/// holds.
/// </summary>
/// <param name="Name">The model's file name.</param>
/// <param name="BytesPerElement">Stored bytes per K or V element, side data included (Q8_0: 34/32).</param>
/// <param name="BytesPerToken">2 x layers x kv_heads x head_dim x bytes per element (1 x where the cache keeps each row once: a latent model's).</param>
/// <param name="ContextLength">The longest sequence the engine serves: what a contiguous cache reserves per session.</param>
/// <param name="BudgetBytes">The pool's bytes (whole blocks).</param>
public sealed record EngineSnapshotModel(
    string Name,
    string Architecture,
    int Layers,
    int KvHeads,
    int HeadDim,
    string ElementType,
    double BytesPerElement,
    long BytesPerToken,
    int ContextLength,
    int BlockSize,
    long BudgetBytes);
