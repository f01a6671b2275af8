namespace KvSharp.Extensions.AI;

/// <summary>
/// The live conversations by id, at most <c>capacity</c> of them: adding one more evicts the least recently used
/// (a lookup counts as a use). Thread-safe; the evicted conversation is returned for the caller to close outside the lock.
/// </summary>
internal sealed class ConversationRegistry(int capacity)
{
    private readonly Dictionary<string, LinkedListNode<KvSharpConversation>> _byId = new(StringComparer.Ordinal);
    // Most recently used first.
    private readonly LinkedList<KvSharpConversation> _order = new();

    public int Count
    {
        get
        {
            lock (_byId) return _byId.Count;
        }
    }

    /// <summary>Adds <paramref name="conversation"/> and returns the one evicted to make room, or null.</summary>
    public KvSharpConversation? Add(KvSharpConversation conversation)
    {
        lock (_byId)
        {
            KvSharpConversation? evicted = null;
            if (_byId.Count >= capacity)
            {
                evicted = _order.Last!.Value;
                _order.RemoveLast();
                _byId.Remove(evicted.Id);
            }
            _byId.Add(conversation.Id, _order.AddFirst(conversation));
            return evicted;
        }
    }

    /// <summary>The conversation with that id, now the most recently used; null if none is live.</summary>
    public KvSharpConversation? Find(string id)
    {
        lock (_byId)
        {
            if (!_byId.TryGetValue(id, out var node)) return null;
            _order.Remove(node);
            _order.AddFirst(node);
            return node.Value;
        }
    }

    /// <summary>Removes it if it is still registered.</summary>
    public void Remove(KvSharpConversation conversation)
    {
        lock (_byId)
        {
            if (_byId.TryGetValue(conversation.Id, out var node) && node.Value == conversation)
            {
                _order.Remove(node);
                _byId.Remove(conversation.Id);
            }
        }
    }

    /// <summary>Empties the registry and returns what it held.</summary>
    public List<KvSharpConversation> Clear()
    {
        lock (_byId)
        {
            var all = _order.ToList();
            _order.Clear();
            _byId.Clear();
            return all;
        }
    }
}
