using System.Text;
using System.Text.Json;

namespace KvSharp.Templates;

/// <summary>
/// A call found in a reply that is still being generated (<see cref="ToolCallSyntax.CallsSoFar"/>): its name once it
/// is written whole (null before), where its arguments' JSON object begins in the reply (-1: not yet), where that object
/// ends (<see cref="PartialJson.Unfinished"/>: not yet), and where the call's own syntax ends (Unfinished: not yet).
/// </summary>
internal sealed record CallSoFar(string? Name, int ArgumentsAt, int ArgumentsEnd, int End)
{
    /// <summary>The arguments' text written so far in <paramref name="reply"/>: raw, as the whole reading keeps it.</summary>
    public string Arguments(string reply) => ArgumentsAt < 0 ? "" : reply[ArgumentsAt..(ArgumentsEnd < 0 ? reply.Length : ArgumentsEnd)];
}

/// <summary>
/// Reading JSON while it is generated: where a value ends if it has ended yet, and the calls in a call object or a list
/// of them. Lenient where the text is still coming and strict nowhere else: the whole reply's reading (which parses
/// the JSON for real) decides what is a call; this only says where a call's arguments begin early enough to stream them.
/// </summary>
internal static class PartialJson
{
    /// <summary>The text stops before the value does.</summary>
    public const int Unfinished = -1;

    /// <summary>What is there is not a JSON value.</summary>
    public const int Malformed = -2;

    public static int SkipWhitespace(string s, int at)
    {
        while (at < s.Length && s[at] is ' ' or '\t' or '\n' or '\r') at++;
        return at;
    }

    /// <summary>
    /// Where the JSON value at <paramref name="at"/> ends (exclusive), <see cref="Unfinished"/> or
    /// <see cref="Malformed"/>. A number or literal ends at the first character that cannot continue it, so one the text
    /// ends in is unfinished.
    /// </summary>
    public static int ValueEnd(string s, int at)
    {
        if (at >= s.Length) return Unfinished;
        if (s[at] == '"') return StringEnd(s, at);
        if (s[at] is '{' or '[') return NestedEnd(s, at);
        int end = at;
        while (end < s.Length && (char.IsAsciiLetterOrDigit(s[end]) || s[end] is '-' or '+' or '.')) end++;
        return end == at ? Malformed : end == s.Length ? Unfinished : end;
    }

    private static int StringEnd(string s, int at)
    {
        for (int i = at + 1; i < s.Length; i++)
        {
            if (s[i] == '\\') i++;
            else if (s[i] == '"') return i + 1;
        }
        return Unfinished;
    }

    /// <summary>The end of an object or list: brackets counted outside strings (whether they pair up is the parser's to say).</summary>
    private static int NestedEnd(string s, int at)
    {
        int depth = 0;
        for (int i = at; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '"')
            {
                int end = StringEnd(s, i);
                if (end < 0) return Unfinished;
                i = end - 1;
            }
            else if (c is '{' or '[') depth++;
            else if (c is '}' or ']' && --depth == 0) return i + 1;
        }
        return Unfinished;
    }

    /// <summary>A whole JSON string's value; null when it is not one.</summary>
    private static string? StringValue(string s, int at, int end)
    {
        try
        {
            var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(s[at..end]));
            return reader.Read() && reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// The call object at <paramref name="at"/> so far: its name under <paramref name="nameKey"/>, its arguments object
    /// under the first of <paramref name="argumentKeys"/> (the key the whole reading prefers, so it may stream while
    /// the object is open), or under a later one once the object has closed without the first. Null when there is
    /// no object there, or it goes wrong (the whole reading will then find no call in it).
    /// </summary>
    public static CallSoFar? CallObject(string s, int at, string nameKey, string[] argumentKeys)
    {
        if (at >= s.Length || s[at] != '{') return null;
        string? name = null;
        var arguments = new (int At, int End)[argumentKeys.Length];
        Array.Fill(arguments, (-1, Unfinished));
        CallSoFar SoFar(int end)
        {
            // The first key the object has, in the reading's order of preference; an open object only its first key.
            int key = Array.FindIndex(arguments, a => a.At >= 0);
            if (key > 0 && end < 0) key = -1;
            return new CallSoFar(name, key < 0 ? -1 : arguments[key].At, key < 0 ? Unfinished : arguments[key].End, end);
        }
        for (int i = SkipWhitespace(s, at + 1); i < s.Length; i = SkipWhitespace(s, i))
        {
            if (s[i] == '}') return SoFar(i + 1);
            if (s[i] == ',')
            {
                i++;
                continue;
            }
            int keyEnd = ValueEnd(s, i);
            if (s[i] != '"' || keyEnd == Malformed) return null;
            if (keyEnd == Unfinished) break;
            string? key = StringValue(s, i, keyEnd);
            i = SkipWhitespace(s, keyEnd);
            if (i >= s.Length) break;
            if (s[i] != ':') return null;
            i = SkipWhitespace(s, i + 1);
            if (i >= s.Length) break;
            int valueEnd = ValueEnd(s, i);
            int argument = Array.IndexOf(argumentKeys, key);
            if (key == nameKey && s[i] == '"' && valueEnd > 0) name = StringValue(s, i, valueEnd);
            else if (argument >= 0 && s[i] == '{') arguments[argument] = (i, valueEnd);
            if (valueEnd == Malformed) return null;
            if (valueEnd == Unfinished) break;
            i = valueEnd;
        }
        return SoFar(Unfinished);
    }

    /// <summary>The calls so far in a JSON list of call objects at <paramref name="at"/> (keys as in <see cref="CallObject"/>); empty when no list is there.</summary>
    public static List<CallSoFar> CallList(string s, int at, string nameKey, string[] argumentKeys)
    {
        var calls = new List<CallSoFar>();
        if (at >= s.Length || s[at] != '[') return calls;
        for (int i = SkipWhitespace(s, at + 1); i < s.Length; i = SkipWhitespace(s, i))
        {
            if (CallObject(s, i, nameKey, argumentKeys) is not { } call) break;
            calls.Add(call);
            if (call.End < 0) break;
            i = SkipWhitespace(s, call.End);
            if (i >= s.Length || s[i] != ',') break;
            i++;
        }
        return calls;
    }

    /// <summary>
    /// A call whose name the syntax wrote apart and whose arguments are the JSON object after <paramref name="at"/>
    /// (past whitespace, as the whole reading trims it); its arguments not begun where no object begins there.
    /// </summary>
    public static CallSoFar NamedArguments(string s, int at, string name)
    {
        int open = SkipWhitespace(s, at);
        if (open >= s.Length || s[open] != '{') return new CallSoFar(name, -1, Unfinished, Unfinished);
        int end = ValueEnd(s, open);
        return new CallSoFar(name, open, end, end);
    }
}
