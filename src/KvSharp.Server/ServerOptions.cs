using KvSharp.Engine;
using KvSharp.Templates;

namespace KvSharp.Server;

/// <summary>Where <see cref="KvSharpServer"/> listens, who may call it, and how its one engine is sized.</summary>
public sealed record ServerOptions
{
    /// <summary>An IP address or "localhost"; loopback by default, so nothing outside this machine reaches it unless asked.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port; 0 picks a free one (read it back from <see cref="KvSharpServer.BaseAddress"/>).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>When set, every endpoint but /health needs "Authorization: Bearer KEY" (or "X-Api-Key: KEY").</summary>
    public string? ApiKey { get; init; }
    /// <summary>
    /// Requests accepted beyond <see cref="EngineOptions.MaxRunningSequences"/> while they wait for a slot; the next
    /// one gets 429. Requests that are running or waiting count alike, so the server holds at most running + queue.
    /// </summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>The engine every request goes through: KV budget and type, context length, batch limits.</summary>
    public EngineOptions Engine { get; init; } = new();
    /// <summary>The model's id in the API (/v1/models, the "model" field); default: the model file's name.</summary>
    public string? ModelId { get; init; }
    /// <summary>The template chat requests are rendered with; default: <see cref="ChatTemplate.ForModel"/> (the model's own, else a fallback).</summary>
    public ChatTemplate? ChatTemplate { get; init; }

    /// <summary>
    /// Most token ids kept of recent completions for requests that continue one (<c>continues</c>: the response id),
    /// least recently used out first: about 4 bytes an id (12 a generated one, with where the ids may be cut) plus the
    /// text they spell. 0 keeps none.
    /// </summary>
    public int ContinuationTokens { get; init; } = 1 << 21;

    /// <summary>
    /// Most responses of <c>/v1/responses</c> kept (with their conversations) to read back and to continue by
    /// previous_response_id, least recently used out first. 0 keeps none.
    /// </summary>
    public int StoredResponses { get; init; } = 4096;

    /// <summary>Tests only: no engine loop; the test calls <see cref="LlmEngine.Step"/> itself, to see each step's state.</summary>
    internal bool ManualEngineSteps { get; init; }
    /// <summary>
    /// Where <c>POST /v1/kv/sessions/{id}/save</c> writes a conversation's KV and <c>/restore</c> reads it back
    /// (<see cref="Sessions.KvSessionEndpoints"/>); null: those endpoints answer 404.
    /// </summary>
    public string? SessionDirectory { get; init; }

    /// <summary>
    /// The inspector's event stream (<c>GET /v1/kv/events</c>) takes a new snapshot at most this often while the
    /// engine changes (an idle engine sends none): one a second by default, and at least <see cref="MinInspectorInterval"/>.
    /// Measured on 2 cores (docs/inspector.md): at one a second an open stream's cost to decoding was within the
    /// host's noise (−1.6% to +1.8%), at four a second 2–7%; a faster page is `--inspector-interval-ms` away.
    /// </summary>
    public TimeSpan InspectorInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>The shortest <see cref="InspectorInterval"/>: ten snapshots a second.</summary>
    public static readonly TimeSpan MinInspectorInterval = TimeSpan.FromMilliseconds(100);

    internal void Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "port must be in [0, 65535]");
        if (MaxQueue < 0) throw new ArgumentOutOfRangeException(nameof(MaxQueue), MaxQueue, "queue length must be >= 0");
        if (StoredResponses < 0) throw new ArgumentOutOfRangeException(nameof(StoredResponses), StoredResponses, "stored responses must be >= 0");
        if (ContinuationTokens < 0) throw new ArgumentOutOfRangeException(nameof(ContinuationTokens), ContinuationTokens, "continuation tokens must be >= 0");
        if (InspectorInterval < MinInspectorInterval)
            throw new ArgumentOutOfRangeException(nameof(InspectorInterval), InspectorInterval, $"the inspector's snapshot interval must be at least {MinInspectorInterval.TotalMilliseconds} ms");
        if (ApiKey is { Length: 0 }) throw new ArgumentException("the API key must not be empty", nameof(ApiKey));
    }
}
