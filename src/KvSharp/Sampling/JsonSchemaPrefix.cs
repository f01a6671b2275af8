using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KvSharp.Sampling;

/// <summary>How far a text goes toward a JSON value a schema allows.</summary>
public enum JsonPrefixStatus
{
    /// <summary>No text that starts like this is a value the schema allows.</summary>
    Invalid,
    /// <summary>The start of such a value (or of one that could still grow).</summary>
    Partial,
    /// <summary>A whole value the schema allows (only whitespace may follow).</summary>
    Complete,
}

/// <summary>
/// Whether a UTF-8 text begins a JSON value that a JSON schema allows: what constrains generation to a schema
/// (OpenAI's json_schema response format, Microsoft.Extensions.AI's <c>GetResponseAsync&lt;T&gt;</c>). The schema
/// keywords read are <c>type</c> (one or a list), <c>properties</c>, <c>required</c>, <c>additionalProperties</c> (an
/// object's properties are the listed ones unless it is true or a schema), <c>items</c>, <c>enum</c> and
/// <c>const</c> (strings), <c>anyOf</c>; annotations (<c>description</c>, <c>title</c>, <c>default</c>,
/// <c>$schema</c>, <c>examples</c>) are ignored. A keyword that would constrain values in a way not enforced here
/// (<c>pattern</c>, <c>minimum</c>, <c>$ref</c> ...) is refused by name rather than ignored, so a reply never breaks
/// a schema it was held to. Each check reads the text from its start (a recursive-descent parse); whitespace runs
/// are capped at <see cref="JsonPrefix.MaxWhitespace"/>.
/// </summary>
public sealed class JsonSchemaPrefix
{
    private readonly Node _root;

    private JsonSchemaPrefix(Node root, bool beginsWithJson)
    {
        _root = root;
        BeginsWithJson = beginsWithJson;
    }

    /// <summary>The checker for <paramref name="schema"/>.</summary>
    /// <exception cref="ArgumentException">A keyword or type this checker does not enforce, named.</exception>
    public static JsonSchemaPrefix For(JsonElement schema) => For(schema, "schema");

    /// <summary><see cref="For(JsonElement)"/>, naming the schema <paramref name="path"/> in its errors (where a request holds it).</summary>
    public static JsonSchemaPrefix For(JsonElement schema, string path) => new(Build(schema, path), beginsWithJson: true);

    /// <summary>
    /// The checker for a text that is one of the <paramref name="alternatives"/>' leads, exactly (no whitespace before
    /// it), then a JSON value its schema allows: what a forced tool call holds where the syntax writes the tool's name
    /// outside the JSON (<c>get_weather\n{"city": ...}</c>). Each schema is named by its path in errors.
    /// </summary>
    /// <exception cref="ArgumentException">No alternatives, or a keyword or type this checker does not enforce, named.</exception>
    public static JsonSchemaPrefix ForLeads(IReadOnlyList<(string Lead, JsonElement Schema, string Path)> alternatives)
    {
        ArgumentNullException.ThrowIfNull(alternatives);
        if (alternatives.Count == 0) throw new ArgumentException("a lead-then-JSON checker needs at least one alternative", nameof(alternatives));
        var leads = alternatives.Select(a => (Node)new LeadNode(Encoding.UTF8.GetBytes(a.Lead), Build(a.Schema, a.Path))).ToArray();
        return new(leads.Length == 1 ? leads[0] : new UnionNode(leads, leadingWhitespace: false), alternatives.All(a => a.Lead.Length == 0));
    }

    /// <summary>
    /// Whether the text is JSON from its first byte (false where it starts with a lead, <see cref="ForLeads"/>): a
    /// caller may then turn away text that is not JSON syntax before reading it against the schema.
    /// </summary>
    public bool BeginsWithJson { get; }

    /// <summary>How far <paramref name="text"/> goes toward an allowed value.</summary>
    public JsonPrefixStatus Check(ReadOnlySpan<byte> text) => Check(text, out _, out _);

    /// <summary>
    /// <see cref="Check(ReadOnlySpan{byte})"/>, and where a Partial text ends inside a string, what a caller trying many
    /// continuations can tell without reading the text again: in a string the schema leaves free
    /// (<paramref name="inFreeString"/>), any bytes but a quote, a backslash or a control character keep it Partial; in
    /// one that must be one of a few (a property name, an enum value), <paramref name="stringRests"/> are the UTF-8
    /// bytes each may still add, and such a continuation keeps it Partial exactly when one of them starts with it (null
    /// otherwise).
    /// </summary>
    public JsonPrefixStatus Check(ReadOnlySpan<byte> text, out bool inFreeString, out IReadOnlyList<byte[]>? stringRests)
    {
        var r = new Reader(text);
        var result = Read(ref r);
        inFreeString = result == JsonPrefixStatus.Partial && r.EndedInFreeString;
        stringRests = result == JsonPrefixStatus.Partial ? r.StringRests : null;
        return result;
    }

    /// <summary>
    /// What each of <paramref name="allowed"/> whose UTF-8 starts with <paramref name="soFar"/> (a string's bytes so far,
    /// perhaps ending inside a character) has after it, where the text ends inside an <paramref name="escape"/> (its
    /// text from the backslash; "" for none) only those whose next character it can still spell; empty when none does.
    /// </summary>
    private static List<byte[]> Rests(IEnumerable<string> allowed, byte[] soFar, string escape) =>
        [.. allowed.Select(Encoding.UTF8.GetBytes).Where(a => a.AsSpan().StartsWith(soFar)).Select(a => a[soFar.Length..])
            .Where(rest => escape.Length == 0 || EscapeCanSpell(escape, rest))];

    /// <summary>
    /// Whether an unfinished escape (<c>\</c>, or <c>\u</c> and up to three hex digits) can still become the first
    /// character of <paramref name="rest"/>: any character after a lone backslash (<c>\u</c> spells every one), else
    /// one whose UTF-16 code unit starts with the digits.
    /// </summary>
    private static bool EscapeCanSpell(string escape, byte[] rest)
    {
        if (System.Text.Rune.DecodeFromUtf8(rest, out var rune, out _) != System.Buffers.OperationStatus.Done) return false;
        if (escape.Length == 1) return true;
        Span<char> units = stackalloc char[2];
        rune.EncodeToUtf16(units);
        return ((int)units[0]).ToString("X4", CultureInfo.InvariantCulture).StartsWith(escape[2..], StringComparison.OrdinalIgnoreCase);
    }

    private JsonPrefixStatus Read(ref Reader r)
    {
        var status = _root.Parse(ref r);
        if (status != Status.Ok) return status == Status.Partial ? JsonPrefixStatus.Partial : JsonPrefixStatus.Invalid;
        return r.SkipWhitespace() == Status.Fail || !r.AtEnd ? JsonPrefixStatus.Invalid : JsonPrefixStatus.Complete;
    }

    private static readonly HashSet<string> Annotations = ["description", "title", "default", "$schema", "examples", "$comment", "$id"];

    private static Node Build(JsonElement s, string path)
    {
        if (s.ValueKind == JsonValueKind.True) return new AnyNode();
        if (s.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{path} must be a JSON schema object, got {s.ValueKind}");
        foreach (var p in s.EnumerateObject())
            if (!Annotations.Contains(p.Name) && p.Name is not ("type" or "properties" or "required" or "additionalProperties" or "items" or "enum" or "const" or "anyOf"))
                throw new ArgumentException($"{path}.{p.Name} is not supported in a constrained reply (supported: type, properties, required, additionalProperties, items, enum, const, anyOf)");
        if (s.TryGetProperty("anyOf", out var anyOf))
        {
            if (anyOf.ValueKind != JsonValueKind.Array || anyOf.GetArrayLength() == 0) throw new ArgumentException($"{path}.anyOf must be a non-empty array");
            return new UnionNode([.. anyOf.EnumerateArray().Select((x, i) => Build(x, $"{path}.anyOf[{i}]"))]);
        }
        if (s.TryGetProperty("const", out var constant)) return new StringNode([Text(constant, $"{path}.const")]);
        if (s.TryGetProperty("enum", out var values))
        {
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0) throw new ArgumentException($"{path}.enum must be a non-empty array");
            return new StringNode([.. values.EnumerateArray().Select((v, i) => Text(v, $"{path}.enum[{i}]"))]);
        }
        if (!s.TryGetProperty("type", out var type)) return s.TryGetProperty("properties", out _) ? BuildType("object", s, path) : new AnyNode();
        if (type.ValueKind == JsonValueKind.String) return BuildType(type.GetString()!, s, path);
        if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0)
            return new UnionNode([.. type.EnumerateArray().Select(t => BuildType(t.ValueKind == JsonValueKind.String ? t.GetString()! : "", s, path))]);
        throw new ArgumentException($"{path}.type must be a type name or a list of them");
    }

    private static string Text(JsonElement v, string path) => v.ValueKind == JsonValueKind.String ? v.GetString()!
        : throw new ArgumentException($"{path} must be a string (enums and consts of other types are not supported in a constrained reply)");

    private static Node BuildType(string type, JsonElement s, string path) => type switch
    {
        "string" => new StringNode(null),
        "integer" => new NumberNode(integer: true),
        "number" => new NumberNode(integer: false),
        "boolean" => new LiteralNode(["true", "false"]),
        "null" => new LiteralNode(["null"]),
        "array" => new ArrayNode(s.TryGetProperty("items", out var items) ? Build(items, path + ".items") : new AnyNode()),
        "object" => BuildObject(s, path),
        _ => throw new ArgumentException($"{path}.type '{type}' is not a JSON schema type"),
    };

    private static ObjectNode BuildObject(JsonElement s, string path)
    {
        var properties = new Dictionary<string, Node>(StringComparer.Ordinal);
        if (s.TryGetProperty("properties", out var props))
            foreach (var p in props.EnumerateObject()) properties[p.Name] = Build(p.Value, $"{path}.properties.{p.Name}");
        var required = s.TryGetProperty("required", out var req) ? req.EnumerateArray().Select(x => x.GetString()!).ToHashSet(StringComparer.Ordinal) : [];
        foreach (string name in required)
            if (!properties.ContainsKey(name) && properties.Count > 0) throw new ArgumentException($"{path}.required names '{name}', which is not among its properties");
        // Unspecified, an object with listed properties takes those only (what strict structured outputs ask for);
        // one without any takes any property.
        Node? additional = s.TryGetProperty("additionalProperties", out var extra)
            ? extra.ValueKind switch { JsonValueKind.False => null, JsonValueKind.True => new AnyNode(), _ => Build(extra, path + ".additionalProperties") }
            : properties.Count == 0 ? new AnyNode() : null;
        return new ObjectNode(properties, required, additional);
    }

    private enum Status : byte { Fail, Partial, Ok }

    /// <summary>The text and a position in it; whitespace is counted to cap its runs.</summary>
    private ref struct Reader(ReadOnlySpan<byte> text)
    {
        private readonly ReadOnlySpan<byte> _text = text;
        public int Position;
        /// <summary>The text ended inside a string's characters (not inside an escape).</summary>
        public bool EndedInString;
        /// <summary>... of a string the schema leaves free.</summary>
        public bool EndedInFreeString;
        /// <summary>... of a string that must be one of a few: what each may still add (see <see cref="Check(ReadOnlySpan{byte}, out bool, out IReadOnlyList{byte[]}?)"/>).</summary>
        public List<byte[]>? StringRests;
        /// <summary>The bytes of the last string read up to the end of the text (escapes resolved), for a Partial one.</summary>
        public byte[] PartialBytes = [];
        /// <summary>Where that string ends inside an escape, its text from the backslash; "" otherwise.</summary>
        public string PartialEscape = "";

        public readonly bool AtEnd => Position >= _text.Length;
        public readonly byte Current => _text[Position];

        /// <summary>Whitespace before a token: Fail past the cap, Partial at the end of the text, Ok before a byte.</summary>
        public Status SkipWhitespace()
        {
            int run = 0;
            while (!AtEnd && Current is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
            {
                if (++run > JsonPrefix.MaxWhitespace) return Status.Fail;
                Position++;
            }
            return AtEnd ? Status.Partial : Status.Ok;
        }

        /// <summary>
        /// A string at the position (its opening quote): Ok with its decoded text, or Partial with the text so far at the
        /// end of the input (null when it ends inside an escape), or Fail.
        /// </summary>
        public Status ReadString(StringBuilder value)
        {
            value.Clear();
            if (Current != '"') return Status.Fail;
            Position++;
            var bytes = new List<byte>();
            while (!AtEnd)
            {
                byte b = Current;
                Position++;
                if (b == '"')
                {
                    value.Append(Encoding.UTF8.GetString([.. bytes]));
                    return Status.Ok;
                }
                if (b < 0x20) return Status.Fail;
                if (b != '\\')
                {
                    bytes.Add(b);
                    continue;
                }
                int escapeStart = Position - 1;
                if (AtEnd) return End(value, bytes, escapeStart);
                byte e = Current;
                Position++;
                switch (e)
                {
                    case (byte)'"': bytes.Add((byte)'"'); break;
                    case (byte)'\\': bytes.Add((byte)'\\'); break;
                    case (byte)'/': bytes.Add((byte)'/'); break;
                    case (byte)'b': bytes.Add(8); break;
                    case (byte)'f': bytes.Add(12); break;
                    case (byte)'n': bytes.Add((byte)'\n'); break;
                    case (byte)'r': bytes.Add((byte)'\r'); break;
                    case (byte)'t': bytes.Add((byte)'\t'); break;
                    case (byte)'u':
                        int code = 0;
                        for (int i = 0; i < 4; i++)
                        {
                            if (AtEnd) return End(value, bytes, escapeStart);
                            if (!char.IsAsciiHexDigit((char)Current)) return Status.Fail;
                            code = code * 16 + int.Parse(((char)Current).ToString(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                            Position++;
                        }
                        bytes.AddRange(Encoding.UTF8.GetBytes(((char)code).ToString()));
                        break;
                    default: return Status.Fail;
                }
            }
            return End(value, bytes);
        }

        /// <summary>A string Partial at the end of the text; <paramref name="escapeStart"/>: where an unfinished escape began (-1: none).</summary>
        private Status End(StringBuilder value, List<byte> bytes, int escapeStart = -1)
        {
            EndedInString = escapeStart < 0;
            PartialEscape = escapeStart < 0 ? "" : Encoding.ASCII.GetString(_text[escapeStart..]);
            PartialBytes = [.. bytes];
            value.Append(Encoding.UTF8.GetString(PartialBytes));
            return Status.Partial;
        }

        /// <summary>One of <paramref name="literals"/> at the position; Partial when the input ends inside one.</summary>
        public Status ReadLiteral(string[] literals)
        {
            foreach (string literal in literals)
            {
                int n = 0;
                while (n < literal.Length && Position + n < _text.Length && _text[Position + n] == literal[n]) n++;
                if (n == literal.Length)
                {
                    Position += n;
                    return Status.Ok;
                }
                if (Position + n == _text.Length) return Status.Partial;
            }
            return Status.Fail;
        }

        /// <summary>A number (an integer if <paramref name="integer"/>): Partial when the input ends where it could go on.</summary>
        public Status ReadNumber(bool integer)
        {
            int start = Position;
            if (!AtEnd && Current == '-') Position++;
            if (AtEnd) return Status.Partial;
            if (Current == '0') Position++;
            else if (Current is >= (byte)'1' and <= (byte)'9') while (!AtEnd && Current is >= (byte)'0' and <= (byte)'9') Position++;
            else return Status.Fail;
            if (AtEnd) return Status.Partial;
            if (!integer && Current == '.')
            {
                Position++;
                if (AtEnd) return Status.Partial;
                if (Current is not (>= (byte)'0' and <= (byte)'9')) return Status.Fail;
                while (!AtEnd && Current is >= (byte)'0' and <= (byte)'9') Position++;
                if (AtEnd) return Status.Partial;
            }
            if (!integer && Current is (byte)'e' or (byte)'E')
            {
                Position++;
                if (!AtEnd && Current is (byte)'+' or (byte)'-') Position++;
                if (AtEnd) return Status.Partial;
                if (Current is not (>= (byte)'0' and <= (byte)'9')) return Status.Fail;
                while (!AtEnd && Current is >= (byte)'0' and <= (byte)'9') Position++;
                if (AtEnd) return Status.Partial;
            }
            return Position > start ? Status.Ok : Status.Fail;
        }
    }

    private abstract class Node
    {
        /// <summary>Reads one value (whitespace before it included) at the reader's position.</summary>
        public virtual Status Parse(ref Reader r)
        {
            var ws = r.SkipWhitespace();
            return ws != Status.Ok ? ws : Value(ref r);
        }

        protected abstract Status Value(ref Reader r);
    }

    private sealed class AnyNode : Node
    {
        private static readonly string[] Literals = ["true", "false", "null"];

        protected override Status Value(ref Reader r) => r.Current switch
        {
            (byte)'{' => new ObjectNode([], [], this).ParseValue(ref r),
            (byte)'[' => new ArrayNode(this).ParseValue(ref r),
            (byte)'"' => r.ReadString(new StringBuilder()),
            (byte)'-' or (>= (byte)'0' and <= (byte)'9') => r.ReadNumber(integer: false),
            _ => r.ReadLiteral(Literals),
        };
    }

    private sealed class StringNode(string[]? allowed) : Node
    {
        protected override Status Value(ref Reader r)
        {
            var read = new StringBuilder();
            var status = r.ReadString(read);
            if (allowed == null)
            {
                r.EndedInFreeString = status == Status.Partial && r.EndedInString;
                return status;
            }
            if (status == Status.Fail) return status;
            if (status == Status.Ok) return allowed.Contains(read.ToString(), StringComparer.Ordinal) ? Status.Ok : Status.Fail;
            // Byte by byte: the text so far may end inside a character of one of them.
            var rests = Rests(allowed, r.PartialBytes, r.PartialEscape);
            if (rests.Count == 0) return Status.Fail;
            if (r.EndedInString) r.StringRests = rests;
            return Status.Partial;
        }
    }

    private sealed class NumberNode(bool integer) : Node
    {
        protected override Status Value(ref Reader r) => r.ReadNumber(integer);
    }

    private sealed class LiteralNode(string[] literals) : Node
    {
        protected override Status Value(ref Reader r) => r.ReadLiteral(literals);
    }

    /// <summary>One of several values; <paramref name="leadingWhitespace"/> false where its options are leads, which start at their first byte.</summary>
    private sealed class UnionNode(Node[] options, bool leadingWhitespace = true) : Node
    {
        public override Status Parse(ref Reader r) => leadingWhitespace ? base.Parse(ref r) : Value(ref r);

        protected override Status Value(ref Reader r)
        {
            int start = r.Position, end = -1;
            bool partial = false, free = false, restsHold = true;
            List<byte[]>? rests = null;
            foreach (var option in options)
            {
                r.Position = start;
                r.EndedInFreeString = false;
                r.StringRests = null;
                var status = option.Parse(ref r);
                if (status == Status.Ok && end < 0) end = r.Position;
                if (status != Status.Partial) continue;
                partial = true;
                free |= r.EndedInFreeString;
                if (r.StringRests != null) (rests ??= []).AddRange(r.StringRests);
                else restsHold = false;
            }
            // A whole value wins (what follows it is read next); else the text may still become one.
            if (end >= 0)
            {
                r.Position = end;
                return Status.Ok;
            }
            // What a caller may tell without reading again holds for the union only as the options' together: any byte
            // a free string takes keeps that option going; a fixed string's rests only where every open option has some.
            r.EndedInFreeString = partial && free;
            r.StringRests = partial && !free && restsHold ? rests : null;
            return partial ? Status.Partial : Status.Fail;
        }
    }

    /// <summary>Exactly these bytes (no whitespace first), then a value.</summary>
    private sealed class LeadNode(byte[] lead, Node value) : Node
    {
        public override Status Parse(ref Reader r) => Value(ref r);

        protected override Status Value(ref Reader r)
        {
            foreach (byte b in lead)
            {
                if (r.AtEnd) return Status.Partial;
                if (r.Current != b) return Status.Fail;
                r.Position++;
            }
            return value.Parse(ref r);
        }
    }

    private sealed class ArrayNode(Node items) : Node
    {
        protected override Status Value(ref Reader r) => ParseValue(ref r);

        public Status ParseValue(ref Reader r)
        {
            if (r.Current != '[') return Status.Fail;
            r.Position++;
            var ws = r.SkipWhitespace();
            if (ws != Status.Ok) return ws;
            if (r.Current == ']')
            {
                r.Position++;
                return Status.Ok;
            }
            while (true)
            {
                var item = items.Parse(ref r);
                if (item != Status.Ok) return item;
                ws = r.SkipWhitespace();
                if (ws != Status.Ok) return ws;
                byte b = r.Current;
                r.Position++;
                if (b == ']') return Status.Ok;
                if (b != ',') return Status.Fail;
            }
        }
    }

    private sealed class ObjectNode(Dictionary<string, Node> properties, HashSet<string> required, Node? additional) : Node
    {
        protected override Status Value(ref Reader r) => ParseValue(ref r);

        public Status ParseValue(ref Reader r)
        {
            if (r.Current != '{') return Status.Fail;
            r.Position++;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var keyText = new StringBuilder();
            bool first = true;
            while (true)
            {
                var ws = r.SkipWhitespace();
                if (ws != Status.Ok) return ws;
                if (first && r.Current == '}')
                {
                    r.Position++;
                    return required.Count == 0 ? Status.Ok : Status.Fail;
                }
                first = false;
                var key = r.ReadString(keyText);
                string name = keyText.ToString();
                if (key == Status.Fail) return Status.Fail;
                if (key == Status.Partial)
                {
                    if (additional != null) return Status.Partial;
                    var rests = Rests(properties.Keys.Where(k => !seen.Contains(k)), r.PartialBytes, r.PartialEscape);
                    if (rests.Count == 0) return Status.Fail;
                    if (r.EndedInString) r.StringRests = rests;
                    return Status.Partial;
                }
                if (seen.Contains(name) || !(properties.ContainsKey(name) || additional != null)) return Status.Fail;
                seen.Add(name);
                ws = r.SkipWhitespace();
                if (ws != Status.Ok) return ws;
                if (r.Current != ':') return Status.Fail;
                r.Position++;
                var value = (properties.TryGetValue(name, out var node) ? node : additional!).Parse(ref r);
                if (value != Status.Ok) return value;
                ws = r.SkipWhitespace();
                if (ws != Status.Ok) return ws;
                byte b = r.Current;
                r.Position++;
                if (b == '}') return required.IsSubsetOf(seen) ? Status.Ok : Status.Fail;
                // Another property only where one may still come.
                if (b != ',' || (additional == null && properties.Keys.All(seen.Contains))) return Status.Fail;
            }
        }

    }
}
