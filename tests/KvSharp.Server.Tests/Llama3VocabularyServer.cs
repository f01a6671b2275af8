using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Server.Tests;

/// <summary>A server over a tiny synthetic model with Llama 3's vocabulary and chat template (what --vocab ggml-vocab-llama3.gguf builds).</summary>
public class Llama3VocabularyServer : GeneratedModelServer
{
    protected sealed override string WriteModel(string directory)
    {
        string path = Path.Combine(directory, "micro-llama3.gguf");
        var vocabulary = GgufVocabulary.Load(Path.Combine(TestPaths.Fixtures, "tokenizer", "ggml-vocab-llama3.gguf"));
        SyntheticModelBuilder.Write(MicroShape.Shape, GgmlType.Q8_0, path, contextLength: 512, vocabulary: vocabulary); // only the vocabulary is big
        return path;
    }
}
