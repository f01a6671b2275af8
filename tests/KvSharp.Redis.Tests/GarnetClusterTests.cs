using Garnet;
using KvSharp.Tests.Tiers;
using StackExchange.Redis;
using static KvSharp.Tests.Tiers.TierEngineHarness;

namespace KvSharp.Redis.Tests;

/// <summary>
/// The Redis tier over a 3-node Garnet cluster (in the test process, loopback ports, the 16,384 slots split in three):
/// the same tier, given the three endpoints, spreads its keys over the nodes and a prefix evicted from RAM comes back
/// bit-identical, with nothing cluster-specific in KvSharp.
/// </summary>
public sealed class GarnetClusterTests : IDisposable
{
    private readonly List<GarnetServer> _nodes = [];
    private readonly List<string> _directories = [];
    private readonly int[] _ports;

    public GarnetClusterTests()
    {
        _ports = [.. Enumerable.Range(0, 3).Select(_ => KvSharp.Cli.Bench.EmbeddedGarnet.FreeLoopbackPort())];
        // Garnet prints a banner per node to stdout.
        var stdout = Console.Out;
        Console.SetOut(TextWriter.Null);
        try
        {
            foreach (int port in _ports)
            {
                string dir = Directory.CreateTempSubdirectory("kvsharp-garnet-node-").FullName;
                _directories.Add(dir);
                var node = new GarnetServer(["--bind", "127.0.0.1", "--port", port.ToString(), "--memory", "64m", "--index", "1m",
                    "--cluster", "--checkpointdir", dir, "--cluster-announce-ip", "127.0.0.1", "--device-type", "RandomAccess"]);
                node.Start();
                _nodes.Add(node);
            }
        }
        finally
        {
            Console.SetOut(stdout);
        }
    }

    private string Configuration => string.Join(",", _ports.Select(p => $"127.0.0.1:{p}"));

    /// <summary>Gives each node a third of the slots and introduces the others to the first; waits until the cluster says it is ok.</summary>
    private async Task FormClusterAsync(CancellationToken ct)
    {
        int[][] slots = [[0, 5460], [5461, 10922], [10923, 16383]];
        for (int i = 0; i < _ports.Length; i++)
        {
            using var admin = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_ports[i]},allowAdmin=true");
            var server = admin.GetServer($"127.0.0.1:{_ports[i]}");
            await server.ExecuteAsync("CLUSTER", "ADDSLOTSRANGE", slots[i][0], slots[i][1]);
            if (i > 0) await server.ExecuteAsync("CLUSTER", "MEET", "127.0.0.1", _ports[0]);
        }
        // Gossip takes a moment; bounded, so a cluster that never forms fails the test instead of hanging it.
        for (int attempt = 0; attempt < 200; attempt++)
        {
            using var probe = await ConnectionMultiplexer.ConnectAsync(Configuration);
            if (_ports.All(p => probe.GetServer($"127.0.0.1:{p}").ServerType == ServerType.Cluster) &&
                probe.GetServer($"127.0.0.1:{_ports[0]}").ClusterConfiguration?.Nodes.Count == 3)
                return;
            await Task.Delay(50, ct);
        }
        throw new InvalidOperationException("the 3-node Garnet cluster did not form");
    }

    [Fact]
    public async Task KeysSpreadOverThreeNodesAndAnEvictedPrefixComesBackBitIdentical()
    {
        var ct = TestContext.Current.CancellationToken;
        await FormClusterAsync(ct);
        using var h = new TierEngineHarness(new RedisKvTier(Configuration));
        await h.ComputeAndEvictSharedAsync();
        var fetched = h.Run(Request(Shared));
        h.AssertSharedPrefixFromTier();
        h.AssertRecomputed(Request(Shared), fetched);

        using var client = await ConnectionMultiplexer.ConnectAsync(Configuration);
        var perNode = new List<long>();
        foreach (int port in _ports) perNode.Add(await client.GetServer($"127.0.0.1:{port}").DatabaseSizeAsync());
        Assert.True(perNode.Count(n => n > 0) >= 2, $"keys per node: {string.Join(", ", perNode)}");
    }

    public void Dispose()
    {
        foreach (var node in _nodes) node.Dispose();
        foreach (var dir in _directories) Directory.Delete(dir, recursive: true);
    }
}
