using KvSharp.Cache.Policies;

namespace KvSharp.Evaluation;

/// <summary>
/// Cache policies at a series of budgets (positions kept per query), for <c>kvsharp eval --sweep</c>: each windowed
/// policy is stretched to each budget (<c>window:B</c>; <c>sinks:S+window:B-S</c>, the same S), and the full cache
/// comes once, as the baseline every budget is compared with.
/// </summary>
public static class PolicySweep
{
    public static readonly IReadOnlyList<int> DefaultBudgets = [64, 128, 256];

    /// <summary>With no policies given: a plain window, and StreamingLLM's 4 sinks plus a window.</summary>
    public static readonly IReadOnlyList<KvCachePolicy> DefaultPolicies = [KvCachePolicy.Full, KvCachePolicy.SlidingWindow(1), KvCachePolicy.SinksAndWindow(4, 1)];

    public static IReadOnlyList<KvCachePolicy> Expand(IReadOnlyList<KvCachePolicy> policies, IReadOnlyList<int> budgets)
    {
        var all = new List<KvCachePolicy>();
        if (policies.Any(p => p.KeepsEverything)) all.Add(KvCachePolicy.Full);
        foreach (var policy in policies.Where(p => !p.KeepsEverything).DistinctBy(p => p.Sinks))
            foreach (int budget in budgets)
            {
                if (budget <= policy.Sinks)
                    throw new ArgumentException($"--sweep budget {budget} leaves no window after the {policy.Sinks} sinks of cache policy '{policy}'");
                all.Add(KvCachePolicy.SinksAndWindow(policy.Sinks, budget - policy.Sinks));
            }
        return all;
    }
}
