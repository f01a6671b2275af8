namespace KvSharp.Cache.Policies;

/// <summary>How a <see cref="KvCachePolicy"/> chooses the positions it drops: by rule, or by attention scores.</summary>
public enum KvEviction
{
    /// <summary>Nothing is scored: every position (full), or the sinks and window a rule names.</summary>
    None,

    /// <summary>H2O (Zhang et al. 2023): before each query, the lowest accumulated attention mass outside the recent positions goes.</summary>
    HeavyHitters,

    /// <summary>SnapKV (Li et al. 2024): after a prefill, the earlier positions its last queries vote for stay.</summary>
    SnapKv,
}
