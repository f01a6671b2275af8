namespace KvSharp.Server.Continuations;

/// <summary>
/// The token ids of recent completions by response id: the prompt's ids and the generated ones, with the text they
/// spell (the prompt text and the reply's), for requests that name a completion they continue
/// (<see cref="PromptContinuation"/>). Bounded by the ids it holds, least recently used out first. Thread-safe.
/// </summary>
internal sealed class ContinuationStore(long capacityTokens)
{
    private sealed record Entry(string Id, string Text, int[] Tokens, Cut[] Cuts);

    private readonly object _lock = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _byId = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _lru = new();
    private long _tokens;

    /// <summary>Completions held now.</summary>
    public int Count
    {
        get { lock (_lock) return _byId.Count; }
    }

    /// <summary>
    /// Keeps <paramref name="tokens"/>, which spell <paramref name="text"/>, under <paramref name="id"/>, with the
    /// <paramref name="cuts"/> inside them (none: the whole only); one longer than the whole capacity is not kept.
    /// </summary>
    public void Remember(string id, string text, int[] tokens, Cut[]? cuts = null)
    {
        if (tokens.Length > capacityTokens) return;
        lock (_lock)
        {
            if (_byId.Remove(id, out var old)) Drop(old);
            _byId[id] = _lru.AddLast(new Entry(id, text, tokens, cuts ?? [new Cut(tokens.Length, text.Length)]));
            _tokens += tokens.Length;
            while (_tokens > capacityTokens && _lru.First is { } oldest)
            {
                _byId.Remove(oldest.Value.Id);
                Drop(oldest);
            }
        }
    }

    private void Drop(LinkedListNode<Entry> node)
    {
        _lru.Remove(node);
        _tokens -= node.Value.Tokens.Length;
    }

    /// <summary>The text and ids kept under <paramref name="id"/>, which become the most recently used.</summary>
    public bool TryGet(string id, out string text, out int[] tokens) => TryGet(id, out text, out tokens, out _);

    /// <summary>As <see cref="TryGet(string, out string, out int[])"/>, with the places the ids may be cut at (<see cref="Cut"/>), shortest first.</summary>
    public bool TryGet(string id, out string text, out int[] tokens, out Cut[] cuts)
    {
        lock (_lock)
        {
            if (_byId.TryGetValue(id, out var node))
            {
                _lru.Remove(node);
                _lru.AddLast(node);
                (text, tokens, cuts) = (node.Value.Text, node.Value.Tokens, node.Value.Cuts);
                return true;
            }
        }
        (text, tokens, cuts) = ("", [], []);
        return false;
    }
}

/// <summary>A place in a kept completion where its first <see cref="Tokens"/> ids spell exactly the first <see cref="Chars"/> characters of its text.</summary>
internal readonly record struct Cut(int Tokens, int Chars);
