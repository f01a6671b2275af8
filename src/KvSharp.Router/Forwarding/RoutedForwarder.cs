using System.Net;
using KvSharp.Router.Affinity;
using KvSharp.Router.Replicas;
using KvSharp.Router.Routing;
using KvSharp.Router.Status;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace KvSharp.Router.Forwarding;

/// <summary>
/// Sends one request to a replica with YARP's forwarder, and again to another replica while nothing has reached the
/// client: a replica that cannot be reached or answers 503/429 is skipped (one that cannot be reached is also taken
/// out of rotation until its health check passes). The request body is read into memory first, both to key the
/// request by its prompt and to send it again. Once a response has started, a failure cannot be hidden: the client
/// gets an error event (<see cref="StreamFailureHandler"/>).
/// </summary>
internal sealed class RoutedForwarder : IDisposable
{
    public const string ReplicaHeader = "x-kvsharp-replica";
    /// <summary>The replica's tag, sent with each request (the server's ResponseOutput.RouteHeader).</summary>
    public const string RouteHeader = "x-kvsharp-route";
    private readonly IHttpForwarder _forwarder;
    private readonly ReplicaPicker _picker;
    private readonly RouterOptions _options;
    private readonly RouterMetrics _metrics;
    private readonly ILogger _log;
    private readonly HttpMessageInvoker _client;
    private readonly ForwarderRequestConfig _requestConfig;

    public RoutedForwarder(IHttpForwarder forwarder, ReplicaPicker picker, RouterOptions options, RouterMetrics metrics, ILogger<RoutedForwarder> log)
    {
        _forwarder = forwarder;
        _picker = picker;
        _options = options;
        _metrics = metrics;
        _log = log;
        // As YARP advises for a forwarding client: no proxy, redirects, cookies or decompression of its own.
        _client = new HttpMessageInvoker(new StreamFailureHandler(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = options.HealthTimeout,
            EnableMultipleHttp2Connections = true,
        }));
        _requestConfig = new ForwarderRequestConfig { ActivityTimeout = options.ActivityTimeout };
    }

    /// <summary>
    /// Forwards the request; with <paramref name="byPrompt"/>, to the replica its prompt's prefix points at, or, for a
    /// response that continues a stored one (previous_response_id), first to the replica that stored it.
    /// </summary>
    public async Task ForwardAsync(HttpContext context, bool byPrompt)
    {
        byte[]? body = await ReadBodyAsync(context);
        if (body == null) return;
        var prompt = byPrompt ? PromptText.Parse(body) : default;
        var owner = ResponseOwner(prompt.PreviousResponseId);
        var chain = new ulong[byPrompt && owner == null ? _options.MaxBlocks : 0];
        int blocks = chain.Length > 0 ? PrefixChain.Compute(prompt, _options.BlockChars, chain) : 0;
        await SendAsync(context, body, chain.AsSpan(0, blocks).ToArray(), owner, ownerOnly: false);
    }

    /// <summary>
    /// A stored response's read or delete, to the replica that stored it (its id carries the replica's tag); the router's
    /// 404 when no replica of this router made it.
    /// </summary>
    public async Task ForwardToOwnerAsync(HttpContext context, string id)
    {
        if (ResponseOwner(id) is not { } owner)
        {
            await RouterErrors.WriteAsync(context, StatusCodes.Status404NotFound,
                $"response '{id}' was not made through this router (its id names none of its replicas)", "not_found");
            return;
        }
        await SendAsync(context, [], [], owner, ownerOnly: true);
    }

    /// <summary>The replica whose tag a response id carries (<c>resp_TAG_...</c>), or null.</summary>
    private Replica? ResponseOwner(string? responseId)
    {
        if (responseId is not { } id || !id.StartsWith("resp_", StringComparison.Ordinal)) return null;
        int end = id.IndexOf('_', 5);
        if (end < 0) return null;
        string tag = id[5..end];
        return _picker.Replicas.FirstOrDefault(r => r.Tag == tag);
    }

    /// <summary>
    /// Sends the request to the replicas in turn until one answers: <paramref name="owner"/> first where given (alone
    /// with <paramref name="ownerOnly"/>: no other holds what it asks for), then by the prompt's prefix chain.
    /// </summary>
    private async Task SendAsync(HttpContext context, byte[] body, ulong[] chain, Replica? owner, bool ownerOnly)
    {
        int blocks = chain.Length;
        ulong tried = 0;
        string? lastFailure = null;
        int attempts = ownerOnly ? 1 : _options.MaxAttempts;
        for (int attempt = 1; attempt <= attempts; attempt++)
        {
            var replica = owner != null && (tried & (1UL << owner.Index)) == 0 && (owner.Healthy || ownerOnly) ? owner : ownerOnly ? null : _picker.Pick(chain, tried);
            if (replica == null) break;
            tried |= 1UL << replica.Index;
            // The replica tags what it stores with this, so that what follows finds its way back (ResponseOwner).
            context.Request.Headers[RouteHeader] = replica.Tag;
            var state = new AttemptTransformer.Attempt { IsLast = attempt == attempts };
            AttemptTransformer.Begin(context, state);
            context.Request.Body = new MemoryStream(body, writable: false);
            context.Response.Headers[ReplicaHeader] = replica.Name;
            ForwarderError error;
            replica.Begin();
            try { error = await _forwarder.SendAsync(context, replica.Prefix, _client, _requestConfig, AttemptTransformer.Instance); }
            finally { replica.End(); }

            if (state.CutMidStream != null)
            {
                _metrics.MidStreamFailure(replica);
                _log.LogWarning("replica {Replica} failed mid-stream ({Failure}); the client's stream ended with {End}", replica.Name, state.CutMidStream,
                    error == ForwarderError.None ? "an error event" : "a reset connection");
                return;
            }
            if (error == ForwarderError.None && state.Refused == null)
            {
                _metrics.Answered(replica);
                if (blocks > 0 && context.Response.StatusCode == StatusCodes.Status200OK) _picker.Record(chain, replica);
                return;
            }
            if (context.RequestAborted.IsCancellationRequested) return; // the client went away: nobody to answer
            if (context.Response.HasStarted)
            {
                // Not a stream (those are caught above): YARP has reset the client's connection.
                _metrics.MidStreamFailure(replica);
                _log.LogWarning("replica {Replica} failed after its response to {Path} had started ({Error}); the client's connection was reset", replica.Name, context.Request.Path, error);
                return;
            }
            // YARP's error names only the stage ("Request"); its exception says what went wrong ("Connection refused").
            string reason = context.Features.Get<IForwarderErrorFeature>()?.Exception?.GetBaseException().Message is { } cause ? $"{error}: {cause}" : $"{error}";
            lastFailure = state.Refused is { } status ? $"{replica.Name} answered {(int)status}" : $"{replica.Name}: {reason}";
            if (error is ForwarderError.Request or ForwarderError.RequestTimedOut && replica.MarkDown($"request failed: {error}"))
                _log.LogWarning("replica {Replica} taken out of rotation: a request to it failed ({Error})", replica.Name, error);
            _metrics.Retried(replica);
            context.Response.Clear();
            context.Features.Set<IForwarderErrorFeature>(null);
        }
        _metrics.Unserved();
        context.Response.Headers.Remove(ReplicaHeader);
        await RouterErrors.WriteAsync(context, lastFailure == null ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status502BadGateway,
            lastFailure == null ? "no replica is healthy (see GET /router/replicas)" : $"no replica could serve the request (last: {lastFailure})",
            "replicas_unavailable");
    }

    /// <summary>The whole request body, or null (and a 413 written) when it is over <see cref="RouterOptions.MaxRequestBytes"/>.</summary>
    private async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength > _options.MaxRequestBytes)
        {
            await RouterErrors.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, $"the request body ({request.ContentLength} bytes) is over the router's limit of {_options.MaxRequestBytes} bytes", "request_too_large");
            return null;
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int n;
        while ((n = await request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            if (buffer.Length + n > _options.MaxRequestBytes)
            {
                await RouterErrors.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, $"the request body is over the router's limit of {_options.MaxRequestBytes} bytes", "request_too_large");
                return null;
            }
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    public void Dispose() => _client.Dispose();
}
