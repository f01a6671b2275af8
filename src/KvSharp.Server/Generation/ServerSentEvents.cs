using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;

namespace KvSharp.Server.Generation;

/// <summary>OpenAI's streaming framing: one <c>data: JSON</c> event per chunk, a blank line after each, <c>data: [DONE]</c> last.</summary>
internal static class ServerSentEvents
{
    public static void Begin(HttpResponse response)
    {
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        // Proxies such as nginx would otherwise buffer the stream and deliver it in lumps.
        response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <summary>Buffers one event; the caller flushes once per batch of events.</summary>
    public static void Write(PipeWriter body, ReadOnlySpan<byte> json)
    {
        body.Write("data: "u8);
        body.Write(json);
        body.Write("\n\n"u8);
    }

    public static void WriteDone(PipeWriter body) => body.Write("data: [DONE]\n\n"u8);
}
