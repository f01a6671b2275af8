using System.Text;
using System.Text.Json.Nodes;

namespace KvSharp.Cli.Bench;

/// <summary>
/// The serve scenario's conversations, fully determined by the seed: one system prompt shared by every client of a
/// round (so the prefix cache can share it across clients), then per client and turn a user message of plain
/// English words. The text is the same whichever server runs it, so llama-server and kvsharp get identical requests;
/// a common word is about one token in a real vocabulary, which is what the lengths are counted in.
/// </summary>
internal sealed class ServeWorkload(ulong seed, int round, int systemWords, int userWords)
{
    private static readonly string[] Words =
    [
        "the", "a", "small", "house", "river", "stone", "light", "morning", "garden", "window", "story", "friend", "quiet",
        "bright", "cold", "warm", "old", "new", "road", "city", "tree", "bird", "song", "voice", "book", "page", "letter",
        "number", "question", "answer", "reason", "idea", "plan", "table", "chair", "door", "water", "fire", "wind", "cloud",
        "rain", "summer", "winter", "night", "day", "hour", "minute", "people", "child", "teacher", "doctor", "market",
        "bread", "apple", "coffee", "train", "ship", "bridge", "hill", "mountain", "valley", "forest", "field", "farm",
        "horse", "dog", "cat", "fish", "blue", "green", "red", "yellow", "quickly", "slowly", "always", "never", "often",
        "today", "tomorrow", "yesterday", "walks", "reads", "writes", "builds", "finds", "keeps", "opens", "closes", "sees",
        "hears", "knows", "thinks", "and", "but", "because", "while", "after", "before", "with", "without", "under", "over",
    ];

    /// <summary>The system message every client of this round starts with.</summary>
    public string SystemPrompt => "You are a helpful assistant. " + Text(Rng(-1, 0), systemWords);

    /// <summary>Client <paramref name="client"/>'s message at turn <paramref name="turn"/> (0-based).</summary>
    public string UserMessage(int client, int turn) => $"Question {turn + 1}: " + Text(Rng(client, turn), userWords);

    /// <summary>A new conversation: the system message only (when there is one).</summary>
    public JsonArray NewConversation() => HasSystemPrompt ? [Message("system", SystemPrompt)] : [];

    /// <summary>A new conversation with the client's message of turn <paramref name="turn"/>: one request's messages.</summary>
    public JsonArray NewConversationWithTurn(int client, int turn)
    {
        var messages = NewConversation();
        messages.Add(Message("user", UserMessage(client, turn)));
        return messages;
    }

    public bool HasSystemPrompt => systemWords > 0;

    public static JsonObject Message(string role, string content) => new() { ["role"] = role, ["content"] = content };

    /// <summary>A generator per (seed, round, client, turn): HashCode is salted per process, so a fixed mix instead.</summary>
    private Random Rng(int client, int turn)
    {
        ulong h = seed;
        foreach (long part in new long[] { round, client, turn })
        {
            h = (h ^ (ulong)part) * 0x9E3779B97F4A7C15UL;
            h ^= h >> 29;
        }
        return new Random((int)(h >> 33));
    }

    private static string Text(Random rng, int words)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < words; i++)
        {
            if (i > 0) sb.Append(i % 12 == 0 ? ". " : " ");
            sb.Append(Words[rng.Next(Words.Length)]);
        }
        return sb.Append('.').ToString();
    }
}
