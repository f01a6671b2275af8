using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace KvSharp.Redis.Tests;

/// <summary>redis-server on a free loopback port, without persistence; killed with SIGKILL as a crash would be.</summary>
public sealed class RedisServerProcess : ITestRedisServer
{
    private readonly string _executable;
    private Process? _process;

    private RedisServerProcess(string executable)
    {
        _executable = executable;
        Port = KvSharp.Cli.Bench.EmbeddedGarnet.FreeLoopbackPort();
        Start();
    }

    public int Port { get; }
    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>A started server, or the test is skipped when redis-server is not on the PATH.</summary>
    public static RedisServerProcess StartOrSkip()
    {
        string? found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);
        Assert.SkipWhen(found == null, "redis-server is not installed (.ci/run installs it with apt-get)");
        return new RedisServerProcess(found!);
    }

    public void Start()
    {
        if (_process != null) return;
        var psi = new ProcessStartInfo(_executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--bind", "127.0.0.1", "--port", Port.ToString(), "--save", "", "--appendonly", "no", "--protected-mode", "no" })
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        _process.OutputDataReceived += (_, e) => { if (e.Data != null) log.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) log.Enqueue(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        // Ready when it accepts a connection (bounded: a server that never comes up fails the test, it does not hang it).
        // A server that exited (its port taken, say) fails with its log: whatever else answers on the port is not it.
        for (int i = 0; i < 400; i++)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"redis-server exited with code {_process.ExitCode} before accepting connections on {Endpoint}: {string.Join(" | ", log.TakeLast(5))}");
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(25);
            }
        }
        throw new InvalidOperationException($"redis-server did not accept connections on {Endpoint}");
    }

    public void Kill()
    {
        if (_process == null) return;
        _process.Kill();
        _process.WaitForExit();
        _process.Dispose();
        _process = null;
    }

    public void Dispose() => Kill();
}
