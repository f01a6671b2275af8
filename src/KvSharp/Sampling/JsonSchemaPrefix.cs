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
/// object's properties are the listed ones unless it is true or a schema), <c>minProperties</c>, <c>maxProperties</c>, <c>items</c>, <c>minItems</c>,
/// <c>maxItems</c>, <c>enum</c> and <c>const</c> (strings), <c>anyOf</c>, <c>oneOf</c> (of a tagged union's
/// branches), <c>allOf</c> (its branches merged into one schema where that is exact: a lone branch, as Pydantic writes a
/// described reference; types intersected, bounds tightened, enums intersected, objects' properties united; see
/// SchemaCompiler.AllOf), <c>$ref</c> (into the schema itself), the
/// string rules <c>minLength</c>, <c>maxLength</c>, <c>pattern</c> and <c>format</c> (StringRules), the number
/// bounds (NumberBounds) and <c>multipleOf</c> (NumberMultiples, exact for a terminating decimal step); annotations (<c>description</c>, <c>title</c>, <c>default</c>, <c>$schema</c>,
/// <c>examples</c>, <c>$defs</c> ...) are ignored. A keyword that would constrain values in a way not enforced here
/// (<c>not</c>, an untagged <c>oneOf</c>, an allOf whose branches cannot be merged exactly: two
/// patterns, a union beside other branches ...) is refused by name rather than ignored, so a reply
/// never breaks a schema it was held to; and a text is Partial only where some continuation completes it. Each check
/// reads the text from its start (a recursive-descent parse); whitespace between tokens is what llama.cpp's JSON
/// grammars allow (<see cref="JsonWhitespace"/>).
/// </summary>
public sealed partial class JsonSchemaPrefix
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
    public static JsonSchemaPrefix For(JsonElement schema, string path) => new(new SchemaCompiler(schema, path).Compile(), beginsWithJson: true);

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
        var leads = alternatives.Select(a => (Node)new LeadNode(Encoding.UTF8.GetBytes(a.Lead), new SchemaCompiler(a.Schema, a.Path).Compile())).ToArray();
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
    /// (<paramref name="inFreeString"/>), whole UTF-8 characters but a quote, a backslash or a control character keep it Partial; in
    /// one that must be one of a few (a property name, an enum value), <paramref name="stringRests"/> are the UTF-8
    /// bytes each may still add, and such a continuation keeps it Partial exactly when one of them starts with it (null
    /// otherwise).
    /// </summary>
    public JsonPrefixStatus Check(ReadOnlySpan<byte> text, out bool inFreeString, out IReadOnlyList<byte[]>? stringRests) =>
        Check(text, out inFreeString, out stringRests, out _);

    /// <summary>
    /// <see cref="Check(ReadOnlySpan{byte}, out bool, out IReadOnlyList{byte[]}?)"/>, and where a Partial text ends inside
    /// a string held to rules (a pattern, a format, a length), <paramref name="inRuleString"/> tells a continuation
    /// without a quote, a backslash or a control character from that string's bytes alone (null otherwise).
    /// </summary>
    public JsonPrefixStatus Check(ReadOnlySpan<byte> text, out bool inFreeString, out IReadOnlyList<byte[]>? stringRests, out StringContinuation? inRuleString)
    {
        var r = new Reader(text);
        var result = Read(ref r);
        bool partial = result == JsonPrefixStatus.Partial;
        inFreeString = partial && r.EndedInFreeString;
        stringRests = partial ? r.StringRests : null;
        inRuleString = partial && r.EndedInRules is { } rules ? new StringContinuation(rules, r.PartialBytes) : null;
        return result;
    }

    /// <summary>Where a text ends inside a string held to rules: whether a continuation of it keeps the string allowed.</summary>
    public sealed class StringContinuation
    {
        private readonly StringRules _rules;
        private readonly byte[] _soFar;

        internal StringContinuation(StringRules rules, byte[] soFar) => (_rules, _soFar) = (rules, soFar);

        /// <summary>
        /// Whether the text followed by <paramref name="piece"/> (bytes with no quote, backslash or control character:
        /// the caller reads others in full) is still Partial.
        /// </summary>
        public bool Allows(ReadOnlySpan<byte> piece) => _rules.AllowsStart([.. _soFar, .. piece], "");
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
    /// Whether an unfinished escape can still become the first character of <paramref name="rest"/>: its first UTF-16
    /// code unit (what a <c>\u</c> escape spells) is among those <see cref="EscapeRange"/> leaves open.
    /// </summary>
    private static bool EscapeCanSpell(string escape, byte[] rest)
    {
        if (System.Text.Rune.DecodeFromUtf8(rest, out var rune, out _) != System.Buffers.OperationStatus.Done) return false;
        Span<char> units = stackalloc char[2];
        rune.EncodeToUtf16(units);
        var (first, last) = EscapeRange(escape);
        return units[0] >= first && units[0] <= last;
    }

    /// <summary>
    /// What an escape cut off (its text from the backslash) can still become: any character after a lone backslash or
    /// <c>\u</c> (which spells every one), else the code units its hex digits start.
    /// </summary>
    private static (int First, int Last) EscapeRange(string escape)
    {
        if (escape.Length <= 2) return (0, 0x10FFFF);
        string digits = escape[2..];
        return (int.Parse(digits.PadRight(4, '0'), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            int.Parse(digits.PadRight(4, 'F'), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    private JsonPrefixStatus Read(ref Reader r)
    {
        var status = _root.Parse(ref r);
        if (status != Status.Ok) return status == Status.Partial ? JsonPrefixStatus.Partial : JsonPrefixStatus.Invalid;
        return r.SkipWhitespace() == Status.Fail || !r.AtEnd ? JsonPrefixStatus.Invalid : JsonPrefixStatus.Complete;
    }

    private enum Status : byte { Fail, Partial, Ok }

    /// <summary>The text and a position in it.</summary>
    private ref struct Reader(ReadOnlySpan<byte> text)
    {
        private readonly ReadOnlySpan<byte> _text = text;
        public int Position;
        /// <summary>The text ended inside a string's characters (not inside an escape).</summary>
        public bool EndedInString;
        /// <summary>... of a string the schema leaves free.</summary>
        public bool EndedInFreeString;
        /// <summary>... inside a character's UTF-8 bytes, whose next byte is not any byte.</summary>
        public bool EndedMidCharacter;
        /// <summary>... of a string held to these rules, outside an escape.</summary>
        public StringRules? EndedInRules;
        /// <summary>... of a string that must be one of a few: what each may still add (see <see cref="Check(ReadOnlySpan{byte}, out bool, out IReadOnlyList{byte[]}?)"/>).</summary>
        public List<byte[]>? StringRests;
        /// <summary>The bytes of the last string read up to the end of the text (escapes resolved), for a Partial one.</summary>
        public byte[] PartialBytes = [];
        /// <summary>Where that string ends inside an escape, its text from the backslash; "" otherwise.</summary>
        public string PartialEscape = "";

        public readonly bool AtEnd => Position >= _text.Length;

        /// <summary>References followed without returning, against a schema that refers to itself without reading.</summary>
        public int Depth;
        public const int MaxDepth = 256;

        /// <summary>The ASCII text from <paramref name="start"/> to the position (a number's).</summary>
        public readonly string Read(int start) => Encoding.ASCII.GetString(_text[start..Position]);
        public readonly byte Current => _text[Position];

        /// <summary>Whitespace before a token: Fail where it is more than <see cref="JsonWhitespace"/> allows, Partial at the end of the text, Ok before a byte.</summary>
        public Status SkipWhitespace()
        {
            int run = 0;
            while (!AtEnd && JsonWhitespace.Is(Current))
            {
                if (!JsonWhitespace.Next(ref run, Current)) return Status.Fail;
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
            var utf8 = new Utf8Sequence();
            while (!AtEnd)
            {
                byte b = Current;
                Position++;
                // A character's bytes come whole (well-formed UTF-8): nothing else cuts one off.
                if (utf8.InCharacter)
                {
                    if (!utf8.Next(b)) return Status.Fail;
                    bytes.Add(b);
                    continue;
                }
                if (b == '"')
                {
                    value.Append(Encoding.UTF8.GetString([.. bytes]));
                    return Status.Ok;
                }
                if (b < 0x20) return Status.Fail;
                if (b != '\\')
                {
                    if (!utf8.Next(b)) return Status.Fail;
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
            return End(value, bytes, midCharacter: utf8.InCharacter);
        }

        /// <summary>
        /// A string Partial at the end of the text; <paramref name="escapeStart"/>: where an unfinished escape began (-1:
        /// none); <paramref name="midCharacter"/>: the text ends inside a character's UTF-8 bytes.
        /// </summary>
        private Status End(StringBuilder value, List<byte> bytes, int escapeStart = -1, bool midCharacter = false)
        {
            EndedInString = escapeStart < 0;
            EndedMidCharacter = midCharacter;
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

        /// <summary>
        /// A number (an integer if <paramref name="integer"/>; without an exponent unless <paramref name="exponent"/>):
        /// Partial when the input ends where it could go on.
        /// </summary>
        public Status ReadNumber(bool integer, bool exponent = true)
        {
            int start = Position;
            if (!AtEnd && Current == '-') Position++;
            if (AtEnd) return Status.Partial;
            if (Current == '0') Position++;
            else if (Current is >= (byte)'1' and <= (byte)'9')
            {
                if (!Digits()) return Status.Fail;
            }
            else return Status.Fail;
            if (AtEnd) return Status.Partial;
            if (!integer && Current == '.')
            {
                Position++;
                if (AtEnd) return Status.Partial;
                if (Current is not (>= (byte)'0' and <= (byte)'9') || !Digits()) return Status.Fail;
                if (AtEnd) return Status.Partial;
            }
            if (!integer && exponent && Current is (byte)'e' or (byte)'E')
            {
                Position++;
                if (!AtEnd && Current is (byte)'+' or (byte)'-') Position++;
                if (AtEnd) return Status.Partial;
                if (Current is not (>= (byte)'0' and <= (byte)'9') || !Digits()) return Status.Fail;
                if (AtEnd) return Status.Partial;
            }
            return Position > start ? Status.Ok : Status.Fail;
        }

        /// <summary>A run of digits from the position: false past <see cref="JsonPrefix.MaxDigits"/> of them.</summary>
        private bool Digits()
        {
            int from = Position;
            while (!AtEnd && Current is >= (byte)'0' and <= (byte)'9') Position++;
            return Position - from <= JsonPrefix.MaxDigits;
        }
    }

}
