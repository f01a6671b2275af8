namespace KvSharp.Router.Routing;

public enum RoutingPolicy
{
    /// <summary>The replica that last served the longest known prefix of the prompt, else the prefix's place on a hash ring; bounded by load.</summary>
    PrefixAffinity,
    /// <summary>Each request to the next healthy replica in turn: the baseline, blind to prefixes.</summary>
    RoundRobin,
}
