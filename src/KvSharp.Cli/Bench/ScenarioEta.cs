namespace KvSharp.Cli.Bench;

/// <summary>
/// Time left in a scenario made of runs whose FLOPs are known in advance (the cache scenario: each measurement with
/// the cache, then without). Each kind of run has its own seconds per FLOP (a cached decode step is bound by reading
/// the weights, a recomputing one by arithmetic), first from the warm-up, then from the runs measured so far; the
/// estimate is the FLOPs left in the current run and in every run still to come at those rates.
/// </summary>
internal sealed class ScenarioEta
{
    private readonly Queue<(bool Cached, double Flops)> _pending;
    // Per kind (index 1: cached, 0: recomputing): seconds and FLOPs of the measured runs finished so far, and of the
    // warm-up, which only counts until a measured run of that kind has made progress (short warm-up runs are slower per FLOP).
    private readonly double[] _seconds = new double[2], _flops = new double[2], _warmSeconds = new double[2], _warmFlops = new double[2];

    public ScenarioEta(IEnumerable<(bool Cached, double Flops)> plan) => _pending = new Queue<(bool Cached, double Flops)>(plan);

    public void ObserveWarmUp(bool cached, double flops, double seconds)
    {
        _warmSeconds[Index(cached)] += seconds;
        _warmFlops[Index(cached)] += flops;
    }

    /// <summary>Counts a finished measured run towards its kind's rate.</summary>
    public void Observe(bool cached, double flops, double seconds)
    {
        _seconds[Index(cached)] += seconds;
        _flops[Index(cached)] += flops;
    }

    /// <summary>The next planned run starts: it leaves the queue of runs to come.</summary>
    public void Start() => _pending.TryDequeue(out _);

    /// <summary>
    /// Seconds left: the rest of the current run (<paramref name="doneFlops"/> of <paramref name="runFlops"/> in
    /// <paramref name="elapsed"/> s) and all runs to come, the current run's progress counting towards its kind's rate.
    /// </summary>
    public double SecondsLeft(bool cached, double runFlops, double doneFlops, double elapsed)
    {
        int k = Index(cached);
        double rate = _flops[k] + doneFlops > 0 ? (_seconds[k] + elapsed) / (_flops[k] + doneFlops) : Rate(cached);
        return (runFlops - doneFlops) * rate + _pending.Sum(r => r.Flops * (r.Cached == cached ? rate : Rate(r.Cached)));
    }

    /// <summary>Seconds the runs still to come will take at the rates seen so far (the estimate printed before they start).</summary>
    public double SecondsPlanned => _pending.Sum(r => r.Flops * Rate(r.Cached));

    private double Rate(bool cached)
    {
        int k = Index(cached);
        return _flops[k] > 0 ? _seconds[k] / _flops[k] : _warmFlops[k] > 0 ? _warmSeconds[k] / _warmFlops[k] : 0;
    }

    private static int Index(bool cached) => cached ? 1 : 0;

    /// <summary>"45 s", "6 min 10 s", "2 h 05 min".</summary>
    public static string Format(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Max(0, Math.Round(seconds)));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours} h {t.Minutes:D2} min" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes} min {t.Seconds:D2} s" : $"{t.Seconds} s";
    }
}
