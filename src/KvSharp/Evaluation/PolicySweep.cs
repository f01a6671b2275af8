using KvSharp.Cache.Policies;

namespace KvSharp.Evaluation;

/// <summary>
/// Cache policies at a series of budgets (positions kept), for <c>kvsharp eval --sweep</c>: each windowed policy is
/// stretched to each budget (<c>window:B</c>; <c>sinks:S+window:B-S</c>, the same S), each H2O policy to
/// <c>h2o:B</c> with the same share of recent positions (R/B; default a half), each SnapKV policy to <c>snapkv:B</c>
/// with the observation window it names where that is at most B / 2 (else the default), and the full cache comes once, as the
/// baseline every budget is compared with.
/// </summary>
public static class PolicySweep
{
    public static readonly IReadOnlyList<int> DefaultBudgets = [64, 128, 256];

    /// <summary>With no policies given: a plain window, StreamingLLM's 4 sinks plus a window, H2O and SnapKV.</summary>
    public static readonly IReadOnlyList<KvCachePolicy> DefaultPolicies =
        [KvCachePolicy.Full, KvCachePolicy.SlidingWindow(1), KvCachePolicy.SinksAndWindow(4, 1), KvCachePolicy.HeavyHitters(2), KvCachePolicy.SnapKv(2)];

    public static IReadOnlyList<KvCachePolicy> Expand(IReadOnlyList<KvCachePolicy> policies, IReadOnlyList<int> budgets)
    {
        var all = new List<KvCachePolicy>();
        if (policies.Any(p => p.KeepsEverything)) all.Add(KvCachePolicy.Full);
        foreach (var policy in policies.Where(p => !p.KeepsEverything).DistinctBy(p => (p.Eviction, p.Sinks)))
            foreach (int budget in budgets)
                all.Add(At(policy, budget));
        return all;
    }

    private static KvCachePolicy At(KvCachePolicy policy, int budget)
    {
        switch (policy.Eviction)
        {
            case KvEviction.HeavyHitters:
                return KvCachePolicy.HeavyHitters(budget, (int)((long)budget * policy.Recent / policy.EvictionBudget!.Value));
            case KvEviction.SnapKv:
                bool named = policy.Observation != KvCachePolicy.SnapKv(policy.EvictionBudget!.Value).Observation;
                return KvCachePolicy.SnapKv(budget, named && policy.Observation <= budget / 2 ? policy.Observation : null);
            default:
                if (budget <= policy.Sinks)
                    throw new ArgumentException($"--sweep budget {budget} leaves no window after the {policy.Sinks} sinks of cache policy '{policy}'");
                return KvCachePolicy.SinksAndWindow(policy.Sinks, budget - policy.Sinks);
        }
    }
}
