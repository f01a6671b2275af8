using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace KvSharp.Router.Forwarding;

/// <summary>
/// Wraps a replica's streamed (text/event-stream) responses so that when the replica fails mid-stream the client is
/// told in the stream's own terms: the stream ends with one more event, <c>data: {"error": {...}}</c>, and no
/// <c>data: [DONE]</c>, exactly as kvsharp serve ends a stream it cancels itself, so clients handle both alike. The
/// event is only added at an event boundary (kvsharp serve writes whole events); a stream cut inside an event
/// cannot be ended cleanly, so there the read fails and YARP resets the client's connection instead, which no client
/// takes for a complete response either. (Resetting after the event would be no better: a reset can discard the
/// event before the client reads it.)
/// </summary>
internal sealed class StreamFailureHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        if (response.Content.Headers.ContentType?.MediaType == "text/event-stream")
            response.Content = new GuardedContent(response.Content, request.RequestUri!.GetLeftPart(UriPartial.Authority),
                request.Options.TryGetValue(AttemptTransformer.AttemptOption, out var attempt) ? attempt : null);
        return response;
    }

    /// <summary>The error event for a stream <paramref name="replica"/> stopped sending.</summary>
    public static byte[] ErrorEvent(string replica, Exception cause)
    {
        var error = new JsonObject
        {
            ["message"] = $"replica {replica} failed mid-stream ({cause.Message}); the response is incomplete",
            ["type"] = "server_error",
            ["param"] = null,
            ["code"] = "replica_failed",
        };
        return Encoding.UTF8.GetBytes($"data: {new JsonObject { ["error"] = error }.ToJsonString()}\n\n");
    }

    private sealed class GuardedContent : HttpContent
    {
        private readonly HttpContent _inner;
        private readonly string _replica;
        private readonly AttemptTransformer.Attempt? _attempt;

        public GuardedContent(HttpContent inner, string replica, AttemptTransformer.Attempt? attempt)
        {
            _inner = inner;
            _replica = replica;
            _attempt = attempt;
            foreach (var header in inner.Headers) Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
            new GuardedStream(await _inner.ReadAsStreamAsync(cancellationToken), _replica, _attempt);

        protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await using var source = await CreateContentReadStreamAsync(CancellationToken.None);
            await source.CopyToAsync(stream);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }

    private sealed class GuardedStream(Stream inner, string replica, AttemptTransformer.Attempt? attempt) : Stream
    {
        private bool _ended;
        private byte[]? _errorEvent;
        // The last two bytes passed on: "\n\n" (or nothing yet) is an event boundary.
        private byte _last1 = (byte)'\n', _last2 = (byte)'\n';

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_ended) return 0;
            if (_errorEvent != null) return EndWithError(buffer);
            try
            {
                int n = await inner.ReadAsync(buffer, cancellationToken);
                if (n >= 2) (_last2, _last1) = (buffer.Span[n - 2], buffer.Span[n - 1]);
                else if (n == 1) (_last2, _last1) = (_last1, buffer.Span[0]);
                return n;
            }
            catch (Exception e) when (e is IOException or HttpRequestException && !cancellationToken.IsCancellationRequested)
            {
                attempt?.CutMidStream = e.Message;
                if (_last1 != '\n' || _last2 != '\n') throw;
                _errorEvent = ErrorEvent(replica, e);
                // YARP waits for data with a zero-byte read: say data is ready, and hand the event to the read that follows.
                return buffer.IsEmpty ? 0 : EndWithError(buffer);
            }
        }

        private int EndWithError(Memory<byte> buffer)
        {
            if (buffer.IsEmpty) return 0;
            if (_errorEvent!.Length > buffer.Length) throw new IOException($"replica {replica} failed mid-stream, and the error event does not fit a {buffer.Length}-byte read");
            _errorEvent.CopyTo(buffer);
            _ended = true;
            return _errorEvent.Length;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
