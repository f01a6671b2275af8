using KvSharp.Router.Routing;

namespace KvSharp.Router;

/// <summary>Where <see cref="KvSharpRouter"/> listens, which replicas it routes to, and how it picks one.</summary>
public sealed record RouterOptions
{
    /// <summary>The kvsharp serve replicas (base addresses such as http://10.0.0.5:8080); at least one.</summary>
    public IReadOnlyList<Uri> Replicas { get; init; } = [];
    /// <summary>An IP address or "localhost"; loopback by default, like kvsharp serve.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port; 0 picks a free one (read it back from <see cref="KvSharpRouter.BaseAddress"/>).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>Prefix affinity (the default) or round-robin (the baseline the router benchmark compares against).</summary>
    public RoutingPolicy Policy { get; init; } = RoutingPolicy.PrefixAffinity;
    /// <summary>
    /// Characters of prompt text per affinity block. About four characters make a token in English BPE text, so the
    /// default 64 is roughly one 16-token KV block of the engines.
    /// </summary>
    public int BlockChars { get; init; } = 64;
    /// <summary>Blocks hashed at most: prompts longer than this many blocks route by their first ones.</summary>
    public int MaxBlocks { get; init; } = 128;
    /// <summary>
    /// A replica is overloaded when its in-flight requests would exceed LoadFactor x the mean over healthy replicas
    /// (consistent hashing with bounded loads); then the request goes to the next replica on the ring. Lower keeps
    /// load even, higher keeps more prefixes together.
    /// </summary>
    public double LoadFactor { get; init; } = 1.25;
    /// <summary>
    /// Requests a replica may take beyond <see cref="LoadFactor"/> x the mean before its prefixes spill over. With few
    /// requests in flight the factor alone is too tight (3 replicas, 4 in flight: a bound of 2), and every spill costs
    /// the moved conversation its cache, while a replica batches a couple more requests almost for free.
    /// </summary>
    public int LoadSlack { get; init; } = 2;
    /// <summary>
    /// Requests a replica may have in flight beyond the least loaded usable replica before the load bound applies to it
    /// at all. Moving a conversation costs it a full prefill of its history on a replica that holds none of it, while
    /// a replica that runs a few more sequences batches them almost for free: late in a burst, when one replica still
    /// serves a handful of turns and the others are idle, the bound alone (the mean is small then) would move those
    /// conversations. SGLang's cache-aware router switches to load balancing only past the same kind of absolute gap
    /// (its balance_abs_threshold, 32 by default, together with a relative one, the role of <see cref="LoadFactor"/> here).
    /// </summary>
    public int LoadMargin { get; init; } = 32;
    /// <summary>
    /// The share of a prompt's blocks its deepest known prefix must cover for the prompt to follow it to that replica
    /// (0 to 1). A shorter match, typically a system prompt that every conversation starts with, makes it a new
    /// conversation, placed where the least KV has gone. SGLang's router has the same rule (its cache threshold).
    /// </summary>
    public double AffinityThreshold { get; init; } = 0.5;
    /// <summary>Tries per request before the client gets the last error: each on another replica.</summary>
    public int MaxAttempts { get; init; } = 3;
    /// <summary>How often each replica's GET /health is polled.</summary>
    public TimeSpan HealthInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>A health probe that takes longer counts as a failure.</summary>
    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>The longest a replica may stay silent within one request (a long non-streamed completion sends nothing until done).</summary>
    public TimeSpan ActivityTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Requests larger than this are refused (413) rather than buffered; a request body is kept in memory so it can be retried.</summary>
    public int MaxRequestBytes { get; init; } = 16 << 20;

    internal void Validate()
    {
        if (Replicas.Count == 0) throw new ArgumentException("at least one --replica URL is needed", nameof(Replicas));
        if (Replicas.Count > KvSharp.Router.Replicas.ReplicaSet.MaxReplicas) throw new ArgumentException($"at most {KvSharp.Router.Replicas.ReplicaSet.MaxReplicas} replicas, got {Replicas.Count}", nameof(Replicas));
        foreach (var r in Replicas)
            if (!r.IsAbsoluteUri || (r.Scheme != Uri.UriSchemeHttp && r.Scheme != Uri.UriSchemeHttps))
                throw new ArgumentException($"--replica {r} is not an http:// or https:// URL", nameof(Replicas));
        if (Replicas.Select(r => r.GetLeftPart(UriPartial.Authority)).Distinct().Count() != Replicas.Count)
            throw new ArgumentException($"--replica is given twice: {string.Join(", ", Replicas)}", nameof(Replicas));
        if (Port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "port must be in [0, 65535]");
        if (BlockChars < 1) throw new ArgumentOutOfRangeException(nameof(BlockChars), BlockChars, "block length must be >= 1 character");
        if (MaxBlocks < 1) throw new ArgumentOutOfRangeException(nameof(MaxBlocks), MaxBlocks, "must hash at least one block");
        if (LoadFactor < 1) throw new ArgumentOutOfRangeException(nameof(LoadFactor), LoadFactor, "load factor must be >= 1 (1 = perfectly even)");
        if (!(AffinityThreshold is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(AffinityThreshold), AffinityThreshold, "affinity threshold must be in [0, 1]");
        if (LoadSlack < 0) throw new ArgumentOutOfRangeException(nameof(LoadSlack), LoadSlack, "slack must be >= 0");
        if (LoadMargin < 0) throw new ArgumentOutOfRangeException(nameof(LoadMargin), LoadMargin, "margin must be >= 0");
        if (MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "at least one attempt");
        if (HealthInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(HealthInterval), HealthInterval, "must be positive");
    }
}
