using KvSharp.Cache.Tiers;
using StackExchange.Redis;

namespace KvSharp.Redis;

/// <summary>
/// Prefix blocks on a Redis-protocol server (Redis, Garnet, a Garnet cluster): one string value per block under its
/// key (<see cref="KvTierBlock.Key"/>), so every engine pointed at the server shares the prefixes any of them computed.
/// Expiry and memory limits are the server's (maxmemory with an LRU policy); values carry their own checksum.
/// The connection never aborts on failure: while the server is down every call fails fast (a miss, so the engine
/// recomputes) and StackExchange.Redis reconnects in the background when it returns.
/// </summary>
public sealed class RedisKvTier : IKvBlockTier
{
    private readonly ConnectionMultiplexer _connection;
    private readonly IDatabase _db;

    /// <param name="configuration">
    /// A StackExchange.Redis configuration string: "host:port", several endpoints for a cluster, options after commas.
    /// Timeouts not given there are at most 2 s to connect and 1 s a command.
    /// </param>
    public RedisKvTier(string configuration)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        // A tier that is down must cost a lookup little: fail within a second rather than queue, unless the
        // configuration says otherwise (a server known to be slow to answer, a loaded test machine).
        bool Given(string key) => configuration.Split(',').Any(part => part.Trim().StartsWith(key + "=", StringComparison.OrdinalIgnoreCase));
        if (!Given("connectTimeout")) options.ConnectTimeout = Math.Min(options.ConnectTimeout, 2000);
        if (!Given("asyncTimeout")) options.AsyncTimeout = Math.Min(options.AsyncTimeout, 1000);
        if (!Given("syncTimeout")) options.SyncTimeout = Math.Min(options.SyncTimeout, 1000);
        options.BacklogPolicy = BacklogPolicy.FailFast;
        Configuration = configuration;
        _connection = ConnectionMultiplexer.Connect(options);
        _db = _connection.GetDatabase();
    }

    public string Name => "redis";
    public string Configuration { get; }
    public bool IsConnected => _connection.IsConnected;

    public async ValueTask PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellation) =>
        await _db.StringSetAsync(key, value).WaitAsync(cancellation).ConfigureAwait(false);

    public async ValueTask<byte[]?> GetAsync(string key, CancellationToken cancellation)
    {
        var value = await _db.StringGetAsync(key).WaitAsync(cancellation).ConfigureAwait(false);
        return value.IsNull ? null : (byte[]?)value;
    }

    public void Dispose() => _connection.Dispose();
}
