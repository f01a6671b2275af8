using System.Net;
using System.Net.Sockets;
using Garnet;

namespace KvSharp.Cli.Bench;

/// <summary>
/// A Garnet server (Microsoft's Redis-protocol server) inside this process on a free loopback port: what
/// `kvsharp bench --scenario tiers` measures against without --redis, and what KvSharp.Redis.Tests run against (the
/// file is linked there), which can kill it and bring it back on the same port.
/// </summary>
internal sealed class EmbeddedGarnet : IDisposable
{
    private GarnetServer? _server;

    private readonly string _memory;

    /// <param name="memory">Garnet's in-memory log size (values past it spill to its disk log), e.g. "64m".</param>
    public EmbeddedGarnet(string memory = "64m")
    {
        _memory = memory;
        Port = FreeLoopbackPort();
        Start();
    }

    public int Port { get; }

    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A loopback port nothing listens on now (the OS's pick for port 0), and never one this process was given before.
    /// The caller binds it later, and a server that is killed and started again on its port leaves it free in between:
    /// the OS may pick a recently released port again, and two servers of this process (tests run side by side) would
    /// then share one.
    /// </summary>
    public static int FreeLoopbackPort()
    {
        lock (HandedOut)
        {
            for (int attempt = 0; attempt < 1000; attempt++)
            {
                using var probe = new TcpListener(IPAddress.Loopback, 0);
                probe.Start();
                int port = ((IPEndPoint)probe.LocalEndpoint).Port;
                probe.Stop();
                if (HandedOut.Add(port)) return port;
            }
        }
        throw new InvalidOperationException("no loopback port that this process has not used already (1,000 tries)");
    }
    public string Endpoint => $"127.0.0.1:{Port}";

    public void Start()
    {
        if (_server != null) return;
        // Garnet prints a banner to stdout, where `kvsharp bench --json` writes its one JSON object: keep it out.
        var stdout = Console.Out;
        Console.SetOut(TextWriter.Null);
        try
        {
            _server = new GarnetServer(["--bind", "127.0.0.1", "--port", Port.ToString(), "--memory", _memory, "--index", "1m"]);
            _server.Start();
        }
        finally
        {
            Console.SetOut(stdout);
        }
    }

    /// <summary>Stops the server as a crash would, for the client: its connections drop and nothing answers on the port.</summary>
    public void Kill()
    {
        _server?.Dispose();
        _server = null;
    }

    public void Dispose() => Kill();
}
