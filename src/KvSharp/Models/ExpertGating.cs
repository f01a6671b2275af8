namespace KvSharp.Models;

/// <summary>How a mixture of experts turns its router's logits into probabilities.</summary>
public enum ExpertGating
{
    /// <summary>A softmax over every expert (Mixtral, Qwen-MoE, DeepSeek V2).</summary>
    Softmax,
    /// <summary>A sigmoid of each logit on its own (DeepSeek V3, Kimi K2, GLM-4.7-Flash), chosen with a bias added.</summary>
    Sigmoid,
    /// <summary>
    /// The experts with the largest logits are chosen, and a softmax over their logits alone weights them (gpt-oss:
    /// llama.cpp's SOFTMAX_WEIGHT).
    /// </summary>
    SoftmaxOfChosen,
}
