using System.Net;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace KvSharp.Router.Forwarding;

/// <summary>
/// YARP's default transforms, plus one decision: a replica that answers 503 (it is stopping, or not ready) or 429 (its
/// queue is full) has done no work for the request, so while tries remain its answer is dropped unread and
/// <see cref="RoutedForwarder"/> sends the request to another replica.
/// </summary>
internal sealed class AttemptTransformer : HttpTransformer
{
    public static readonly AttemptTransformer Instance = new();
    private static readonly object Key = new();

    /// <summary>Where the forwarding client's handlers find the try a request belongs to.</summary>
    public static readonly HttpRequestOptionsKey<Attempt> AttemptOption = new("kvsharp.router.attempt");

    /// <summary>Per try: whether another try may follow, whether this one was refused, and whether its stream was cut.</summary>
    public sealed class Attempt
    {
        public bool IsLast { get; init; }
        public HttpStatusCode? Refused { get; set; }
        /// <summary>Set by <see cref="StreamFailureHandler"/> when the replica's stream failed after it had started.</summary>
        public string? CutMidStream { get; set; }
    }

    public static void Begin(HttpContext context, Attempt attempt) => context.Items[Key] = attempt;

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Options.Set(AttemptOption, (Attempt)httpContext.Items[Key]!);
    }

    public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var attempt = (Attempt)httpContext.Items[Key]!;
        if (proxyResponse is { StatusCode: HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests } && !attempt.IsLast)
        {
            attempt.Refused = proxyResponse.StatusCode;
            return ValueTask.FromResult(false);
        }
        return base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
    }
}
