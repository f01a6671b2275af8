namespace KvSharp.Cache.Policies;

/// <summary>
/// What a score-based policy (H2O, SnapKV) holds for one layer and KV head: the positions it keeps, ascending, each
/// with the storage slot its rows are in and (H2O) its accumulated attention mass; the free slots; and the slots the
/// step being run writes its new positions to. The attention kernel sees the held positions as logical positions
/// 0.. in that order (<see cref="HeldKvRows{TRows, TKey, TValue}"/>), the newest last, so the causal mask of a block of
/// new positions is the kernel's own. Evicting a position frees its slot for a later step's rows: nothing is copied.
/// Heads of one layer run in parallel, each on its own instance.
/// </summary>
internal sealed class ScoredHead
{
    private int[] _positions = [], _slots = [], _free = [], _pending = [];
    private float[] _scores = [], _work = [], _pooled = [], _votes = [];
    private int _freeCount, _pendingStart, _pendingCount;

    /// <summary>Positions held.</summary>
    public int Count { get; private set; }

    /// <summary>The next position this head attends (its queries come in order).</summary>
    public int Next { get; set; }

    /// <summary>SnapKV: the sequence length after the last compression (0 if none): truncating below it is refused.</summary>
    public int CompressedAt { get; set; }

    public ReadOnlySpan<int> Positions => _positions.AsSpan(0, Count);
    public ReadOnlySpan<int> Slots => _slots.AsSpan(0, Count);

    /// <summary>H2O's accumulated attention mass of each held position (in <see cref="Positions"/>' order).</summary>
    public Span<float> Scores => _scores.AsSpan(0, Count);

    /// <summary>A buffer of the held count: one query's probabilities, or SnapKV's votes.</summary>
    public Span<float> Work(int length) => _work.AsSpan(0, length);

    /// <summary>SnapKV's second buffer (pooled votes).</summary>
    public Span<float> Pooled(int length) => _pooled.AsSpan(0, length);

    /// <summary>SnapKV's votes, gathered over the steps that run a prompt's observation window.</summary>
    public Span<float> Votes(int length) => _votes.AsSpan(0, length);

    /// <summary>Makes slots [from, to) available (a storage grown to <paramref name="to"/> rows), the lowest taken first.</summary>
    public void AddSlots(int from, int to)
    {
        if (to > _positions.Length)
        {
            Array.Resize(ref _positions, to);
            Array.Resize(ref _slots, to);
            Array.Resize(ref _free, to);
            Array.Resize(ref _pending, to);
            Array.Resize(ref _scores, to);
            Array.Resize(ref _work, to);
            Array.Resize(ref _pooled, to);
            Array.Resize(ref _votes, to);
        }
        for (int s = to - 1; s >= from; s--) _free[_freeCount++] = s;
    }

    /// <summary>Free slots, held positions aside (a step of T tokens needs T).</summary>
    public int FreeSlots => _freeCount + _pendingCount;

    /// <summary>
    /// Takes a free slot for each of positions [<paramref name="start"/>, start + <paramref name="tokens"/>), where the
    /// step writes their rows; slots a step reserved but never attended (an earlier reservation) go back first.
    /// </summary>
    public void Reserve(int start, int tokens)
    {
        while (_pendingCount > 0) _free[_freeCount++] = _pending[--_pendingCount];
        if (tokens > _freeCount) throw new InvalidOperationException($"{tokens} new positions need {tokens} free slots, {_freeCount} are free");
        _pendingStart = start;
        for (int i = 0; i < tokens; i++) _pending[_pendingCount++] = _free[--_freeCount];
    }

    /// <summary>The slot of <paramref name="position"/>: reserved for the current step, or held; -1 if neither.</summary>
    public int SlotOf(int position)
    {
        int i = position - _pendingStart;
        if (i >= 0 && i < _pendingCount) return _pending[i];
        int at = Positions.BinarySearch(position);
        return at >= 0 ? _slots[at] : -1;
    }

    /// <summary>Holds <paramref name="position"/> (the next one: newer than every held position) in its reserved slot, score 0.</summary>
    public void Append(int position)
    {
        int i = position - _pendingStart;
        if (i < 0 || i >= _pendingCount || (Count > 0 && _positions[Count - 1] >= position))
            throw new InvalidOperationException($"position {position} was not reserved by the current step");
        _positions[Count] = position;
        _slots[Count] = _pending[i];
        _scores[Count] = 0;
        Count++;
    }

    /// <summary>The current step's reservation was used up (every new position appended).</summary>
    public void EndStep() => _pendingCount = 0;

    /// <summary>
    /// H2O: while more than <paramref name="budget"/> positions are held, drops the one with the least accumulated
    /// mass among those older than the <paramref name="recent"/> most recent and not the query's own (the newest held);
    /// of equal scores the oldest goes.
    /// </summary>
    public void EvictLightest(int budget, int recent, int query)
    {
        while (Count > budget)
        {
            int victim = -1;
            float least = float.PositiveInfinity;
            for (int i = 0; i < Count - 1 && _positions[i] <= query - recent; i++)
                if (victim < 0 || _scores[i] < least)
                {
                    victim = i;
                    least = _scores[i];
                }
            if (victim < 0) throw new InvalidOperationException($"no position to evict before the query at {query}: the recent positions fill the budget");
            RemoveAt(victim);
        }
    }

    private void RemoveAt(int index)
    {
        _free[_freeCount++] = _slots[index];
        int after = Count - index - 1;
        Array.Copy(_positions, index + 1, _positions, index, after);
        Array.Copy(_slots, index + 1, _slots, index, after);
        Array.Copy(_scores, index + 1, _scores, index, after);
        Count--;
    }

    /// <summary>
    /// SnapKV: keeps <paramref name="keep"/> of the first <paramref name="prefix"/> held positions, those with the most
    /// votes in <paramref name="pooled"/> (of equal votes the newer stays), and every position after them; the rest
    /// free their slots. <paramref name="scratch"/> holds at least prefix floats.
    /// </summary>
    public void KeepTopVoted(int prefix, int keep, ReadOnlySpan<float> pooled, Span<float> scratch)
    {
        Span<float> sorted = scratch[..prefix];
        pooled[..prefix].CopyTo(sorted);
        sorted.Sort();
        // The keep-th largest vote: every vote above it stays, and as many equal to it as fit, the newest first.
        float threshold = keep > 0 ? sorted[prefix - keep] : float.PositiveInfinity;
        int above = 0;
        for (int j = 0; j < prefix; j++) if (pooled[j] > threshold) above++;
        int equal = keep - above;
        // sorted[j] becomes the keep flag of prefix index j.
        for (int j = prefix - 1; j >= 0; j--)
        {
            bool stays = pooled[j] > threshold || (pooled[j] == threshold && equal-- > 0);
            sorted[j] = stays ? 1 : 0;
        }
        int w = 0;
        for (int j = 0; j < Count; j++)
        {
            if (j < prefix && sorted[j] == 0)
            {
                _free[_freeCount++] = _slots[j];
                continue;
            }
            _positions[w] = _positions[j];
            _slots[w] = _slots[j];
            _scores[w] = _scores[j];
            w++;
        }
        Count = w;
    }

    /// <summary>Drops held positions from <paramref name="length"/> on (their slots become free).</summary>
    public void DropFrom(int length)
    {
        while (Count > 0 && _positions[Count - 1] >= length) _free[_freeCount++] = _slots[--Count];
        Next = Math.Min(Next, length);
    }
}
