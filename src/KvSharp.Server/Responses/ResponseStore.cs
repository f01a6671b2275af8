using KvSharp.Server.Chat;

namespace KvSharp.Server.Responses;

/// <summary>
/// A stored response: what was returned; its conversation (input and output, without the instructions) for one that
/// continues it; and the items it was generated from, as <c>input_items</c> lists them (<see cref="ResponseInputItems"/>).
/// </summary>
internal sealed record StoredResponse(ResponseObject Response, IReadOnlyList<ChatRequestMessage> Conversation, IReadOnlyList<System.Text.Json.JsonElement> InputItems);

/// <summary>
/// Stored responses by id, for <c>previous_response_id</c> and <c>GET /v1/responses/{id}</c>: the most recent
/// <paramref name="capacity"/> of them, least recently used out first. Thread-safe.
/// </summary>
internal sealed class ResponseStore(int capacity)
{
    private readonly object _lock = new();
    private readonly Dictionary<string, LinkedListNode<(string Id, StoredResponse Stored)>> _byId = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Id, StoredResponse Stored)> _lru = new();

    public int Count
    {
        get { lock (_lock) return _byId.Count; }
    }

    public void Remember(string id, StoredResponse stored)
    {
        if (capacity == 0) return;
        lock (_lock)
        {
            if (_byId.Remove(id, out var old)) _lru.Remove(old);
            _byId[id] = _lru.AddLast((id, stored));
            while (_byId.Count > capacity && _lru.First is { } oldest)
            {
                _byId.Remove(oldest.Value.Id);
                _lru.Remove(oldest);
            }
        }
    }

    /// <summary>The response stored under <paramref name="id"/>, which becomes the most recently used.</summary>
    public bool TryGet(string id, out StoredResponse stored)
    {
        lock (_lock)
        {
            if (_byId.TryGetValue(id, out var node))
            {
                _lru.Remove(node);
                _lru.AddLast(node);
                stored = node.Value.Stored;
                return true;
            }
        }
        stored = null!;
        return false;
    }

    public bool Forget(string id)
    {
        lock (_lock)
        {
            if (!_byId.Remove(id, out var node)) return false;
            _lru.Remove(node);
            return true;
        }
    }
}
