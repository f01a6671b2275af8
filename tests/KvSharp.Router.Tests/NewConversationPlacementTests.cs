using KvSharp.Router.Replicas;
using KvSharp.Router.Routing;

namespace KvSharp.Router.Tests;

/// <summary>
/// Where the picker sends a prompt with a known prefix: to that prefix's replica when the prefix is most of the prompt
/// (a later turn), and as a new conversation when it is only a shared system prompt, spread by the KV each replica has
/// been sent, so a burst of new users does not pile onto the replica that served the system prompt last.
/// </summary>
public class NewConversationPlacementTests
{
    private const int SystemBlocks = 8, OwnBlocks = 16;

    private static (ReplicaSet Set, ReplicaPicker Picker) Rig(double threshold = 0.5)
    {
        var set = new ReplicaSet([new Uri("http://10.0.0.1:8080"), new Uri("http://10.0.0.2:8080"), new Uri("http://10.0.0.3:8080")]);
        return (set, new ReplicaPicker(set, new RouterOptions { Replicas = set.All.Select(r => r.Address).ToArray(), AffinityThreshold = threshold }));
    }

    /// <summary>A conversation's chain: the system prompt's blocks every user shares, then its own (hashes spread over the ring, as real ones are).</summary>
    private static ulong[] Conversation(int user, int ownBlocks = OwnBlocks) =>
        [.. Enumerable.Range(1, SystemBlocks).Select(i => Hash(0, i)), .. Enumerable.Range(0, ownBlocks).Select(j => Hash(user + 1, j))];

    private static ulong Hash(int a, int b) => KvSharp.Cache.Paged.PrefixHasher.Hash(17, [a, b]);

    [Fact]
    public void ABurstOfNewConversationsSharingASystemPromptIsSpreadEvenly()
    {
        var (set, picker) = Rig();
        // One conversation has been served: the router knows the system prompt's blocks are on its replica.
        var first = picker.Pick(Conversation(0), tried: 0)!;
        picker.Record(Conversation(0), first);
        // Twelve users open at once: each is in flight (not yet recorded) when the next is placed.
        var counts = new int[3];
        counts[first.Index]++;
        for (int u = 1; u <= 12; u++)
        {
            var r = picker.Pick(Conversation(u), tried: 0)!;
            r.Begin();
            counts[r.Index]++;
        }
        // 13 conversations over 3 replicas: following the system prompt would put 8 or more on the first one before
        // its load bound spilled them (ceil(1.25 x 12 / 3) + 2 = 7 in flight).
        Assert.All(counts, c => Assert.InRange(c, 3, 6));
        Assert.True(counts.Max() - counts.Min() <= 2, string.Join(" / ", counts));
        foreach (var r in set.All) Assert.True(r.InFlight >= 0);
    }

    [Fact]
    public void ALaterTurnFollowsItsConversationEvenToTheBusierReplica()
    {
        var (set, picker) = Rig();
        var turn1 = Conversation(5);
        var home = picker.Pick(turn1, tried: 0)!;
        picker.Record(turn1, home);
        // The home replica is the busiest now; the next turn (the first turn's blocks, then 4 more) still goes home.
        home.Begin();
        home.Begin();
        ulong[] turn2 = [.. turn1, Hash(99, 1), Hash(99, 2), Hash(99, 3), Hash(99, 4)];
        Assert.Same(home, picker.Pick(turn2, tried: 0));
    }

    [Fact]
    public void AMatchBelowTheThresholdIsANewConversationAndZeroFollowsAnyMatch()
    {
        // The system prompt is 8 of 24 blocks: a third. With the threshold at a quarter it is followed.
        foreach (var (threshold, follows) in new[] { (0.25, true), (0.5, false) })
        {
            var (set, picker) = Rig(threshold);
            var home = set.All[1];
            picker.Record(Conversation(0), home);
            // Make the home replica the one a new conversation would avoid: it has all the KV and a request in flight.
            home.Begin();
            var picks = Enumerable.Range(1, 30).Select(u => picker.Pick(Conversation(u), tried: 0)!).ToArray();
            if (follows) Assert.All(picks, p => Assert.Same(home, p));
            else Assert.Contains(picks, p => p != home);
        }
    }

    [Fact]
    public void TwentyFourUsersOpeningAtOnceGetEightPerReplica()
    {
        var (_, picker) = Rig();
        var counts = new int[3];
        for (int u = 1; u <= 24; u++)
        {
            var r = picker.Pick(Conversation(u), tried: 0)!;
            r.Begin();
            counts[r.Index]++;
        }
        Assert.Equal([8, 8, 8], counts);
    }

    [Fact]
    public void ALaggingReplicaKeepsItsConversationsUntilItIsFarAhead()
    {
        foreach (var (inFlight, staysHome) in new[] { (6, true), (40, false) })
        {
            var (set, picker) = Rig();
            var turn1 = Conversation(3);
            var home = picker.Pick(turn1, tried: 0)!;
            picker.Record(turn1, home);
            // Late in a burst: the home replica still serves some turns, the others are idle. A bound of
            // ceil(1.25 x 7 / 3) + 2 = 5 alone would move this conversation to a replica without its history.
            for (int i = 0; i < inFlight; i++) home.Begin();
            ulong[] turn2 = [.. turn1, Hash(77, 1), Hash(77, 2)];
            var picked = picker.Pick(turn2, tried: 0)!;
            Assert.True(staysHome == (picked == home), $"{inFlight} in flight at home: went to {picked.Name}");
        }
    }
}
