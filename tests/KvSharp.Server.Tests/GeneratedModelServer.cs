using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>
/// A real server on loopback over a GGUF the fixture writes for itself (a scripted model, a synthetic one with a
/// real vocabulary), and an HttpClient for it; the file and its folder go when the fixture does.
/// </summary>
public abstract class GeneratedModelServer : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-server-model-").FullName;
    private string _path = "";

    public LlmModel Model { get; private set; } = null!;
    public KvSharpServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    /// <summary>Writes the model (into <paramref name="directory"/>, or wherever its writer puts it) and returns its path.</summary>
    protected abstract string WriteModel(string directory);

    /// <summary>The engine the server runs.</summary>
    protected virtual EngineOptions Engine => new() { ContextLength = 512 };

    /// <summary>The chat template the server renders with; null: the model's own.</summary>
    protected virtual KvSharp.Templates.ChatTemplate? Template => null;

    public async ValueTask InitializeAsync()
    {
        _path = WriteModel(_dir);
        Model = LlmModel.Load(_path, new ModelLoadOptions { Threads = 1 });
        Server = KvSharpServer.Create(Model, new ServerOptions { Port = 0, Engine = Engine, ChatTemplate = Template });
        await Server.StartAsync();
        Client = new HttpClient { BaseAddress = Server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
        Model.Dispose();
        File.Delete(_path);
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }
}
