using KvSharp.Engine;
using KvSharp.Extensions.AI;
using KvSharp.Server.Tests;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// A KvSharpChatClient over a fresh <see cref="ToolCallingModel"/> GGUF that writes <paramref name="script"/> (in
/// <paramref name="template"/>), with a context of 1,024; the file is deleted when the test class is disposed.
/// </summary>
public abstract class ScriptedChatClient(string[]? script = null, string? template = null) : IDisposable
{
    private readonly string _path = ToolCallingModel.Write(script, template);
    private LlmModel? _model;
    private KvSharpChatClient? _client;

    protected LlmModel Model => _model ??= LlmModel.Load(_path, new ModelLoadOptions { Threads = 2 });

    protected KvSharpChatClient Client => _client ??= new KvSharpChatClient(Model, new KvSharpChatClientOptions { Session = new SessionOptions { ContextLength = 1024 } });

    public void Dispose()
    {
        _client?.Dispose();
        _model?.Dispose();
        File.Delete(_path);
        GC.SuppressFinalize(this);
    }
}
