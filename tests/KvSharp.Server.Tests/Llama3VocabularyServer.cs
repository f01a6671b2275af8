using KvSharp.Engine;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Server.Tests;

/// <summary>A server over a tiny synthetic model with Llama 3's vocabulary and chat template (what --vocab ggml-vocab-llama3.gguf builds).</summary>
public sealed class Llama3VocabularyServer : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-llama3-vocab-").FullName;

    public LlmModel Model { get; private set; } = null!;
    public KvSharpServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        string path = Path.Combine(_dir, "micro-llama3.gguf");
        var vocabulary = GgufVocabulary.Load(Path.Combine(TestPaths.Fixtures, "tokenizer", "ggml-vocab-llama3.gguf"));
        SyntheticModelBuilder.Write(MicroShape.Shape, GgmlType.Q8_0, path, contextLength: 512, vocabulary: vocabulary); // only the vocabulary is big
        Model = LlmModel.Load(path, new ModelLoadOptions { Threads = 1 });
        Server = KvSharpServer.Create(Model, new ServerOptions { Port = 0, Engine = new EngineOptions { ContextLength = 512 } });
        await Server.StartAsync();
        Client = new HttpClient { BaseAddress = Server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
        Model.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
