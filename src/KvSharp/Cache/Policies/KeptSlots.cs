namespace KvSharp.Cache.Policies;

/// <summary>
/// Where a windowed cache keeps each position, and which positions a query sees. Sinks [0, S) sit in slots [0, S);
/// a later position p in slot S + (p - S) mod <see cref="RingRows"/> (a ring: a new position overwrites the one
/// RingRows before it, and nothing moves when it wraps). A paged sequence addresses positions through its block
/// table instead and never wraps (RingRows = int.MaxValue: slot = position).
/// The query at p attends to the sinks and the window [<see cref="WindowStart"/>(p), p]; the attention kernel sees
/// them as consecutive logical positions 0.. (sinks, then the window), which is also the order of
/// <see cref="KvCachePolicy.KeptPositions"/>.
/// </summary>
internal readonly record struct KeptSlots(int Sinks, int Window, int RingRows)
{
    /// <summary>The first window position a query at <paramref name="position"/> sees (the sinks before it aside).</summary>
    public int WindowStart(int position) => Math.Max(Sinks, position - Window + 1);

    /// <summary>True while a query at <paramref name="position"/> still sees every position before it.</summary>
    public bool SeesAll(int position) => position < Sinks + Window;

    /// <summary>The slot that holds <paramref name="position"/>.</summary>
    public int Slot(int position) => position < Sinks ? position : Sinks + (position - Sinks) % RingRows;

    /// <summary>Positions a sequence of <paramref name="length"/> tokens holds: the sinks and the last RingRows after them.</summary>
    public int Held(int length) => Math.Min(length, Sinks + RingRows);

    /// <summary>The oldest position after the sinks still in the ring of a sequence of <paramref name="length"/> tokens.</summary>
    public int OldestHeld(int length) => Math.Max(Sinks, length - RingRows);
}
