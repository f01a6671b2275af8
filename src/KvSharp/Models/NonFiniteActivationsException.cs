namespace KvSharp.Models;

/// <summary>
/// The forward pass produced NaN or infinity: the model's weights (or its metadata) are damaged, and generating on
/// would only sample garbage. <see cref="Stage"/> says where the values first went bad.
/// </summary>
public sealed class NonFiniteActivationsException : InvalidOperationException
{
    /// <summary>"the token embedding", "layer 3" or "the output norm and classifier".</summary>
    public string Stage { get; }

    public NonFiniteActivationsException(string model, string stage)
        : base($"{model}: the forward pass produced NaN or infinity, first in the output of {stage}; the weights there are damaged")
    {
        Stage = stage;
    }
}
