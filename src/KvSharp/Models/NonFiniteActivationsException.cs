namespace KvSharp.Models;

/// <summary>
/// The forward pass produced NaN or infinity: the model's weights (or its metadata) are damaged, and generating on
/// would only sample garbage. <see cref="Stage"/> says where the values first went bad.
/// </summary>
public sealed class NonFiniteActivationsException : InvalidOperationException
{
    /// <summary>Where, with the tensors involved: "the token embedding (token_embd.weight)", "layer 3 (blk.3.*)", ...</summary>
    public string Stage { get; }

    public NonFiniteActivationsException(string model, string stage)
        : base($"model '{Gguf.PrintableText.Of(model)}': the forward pass produced NaN or infinity, first in the output of {stage}; the weights there are damaged")
    {
        Stage = stage;
    }
}
