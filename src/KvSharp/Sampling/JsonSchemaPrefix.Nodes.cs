using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KvSharp.Sampling;

/// <summary>The nodes a schema compiles to: each reads one value at the reader's position.</summary>
public sealed partial class JsonSchemaPrefix
{
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
            (byte)'[' => new ArrayNode(this, 0, null).ParseValue(ref r),
            (byte)'"' => r.ReadString(new StringBuilder()),
            (byte)'-' or (>= (byte)'0' and <= (byte)'9') => r.ReadNumber(integer: false),
            _ => r.ReadLiteral(Literals),
        };
    }

    /// <summary>A string: one of <paramref name="allowed"/>, or (null) any the <paramref name="rules"/> allow (null: any at all).</summary>
    private sealed class StringNode(string[]? allowed, StringRules? rules) : Node
    {
        protected override Status Value(ref Reader r)
        {
            var read = new StringBuilder();
            var status = r.ReadString(read);
            if (allowed == null)
            {
                if (rules == null)
                {
                    r.EndedInFreeString = status == Status.Partial && r.EndedInString && !r.EndedMidCharacter;
                    return status;
                }
                if (status != Status.Partial) return status == Status.Ok && rules.Allows(read.ToString()) ? Status.Ok : Status.Fail;
                if (!rules.AllowsStart(r.PartialBytes, r.PartialEscape)) return Status.Fail;
                if (r.EndedInString) r.EndedInRules = rules;
                return Status.Partial;
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

    /// <summary>A number (an integer if <paramref name="integer"/>), held to <paramref name="rule"/> (bounds, a multiple) where there is one.</summary>
    private sealed class NumberNode(bool integer, INumberRule? rule) : Node
    {
        protected override Status Value(ref Reader r)
        {
            int start = r.Position;
            // A rule reads the number's digits, so it is written without an exponent (1e2 would leave every start open).
            var status = r.ReadNumber(integer, exponent: rule == null);
            if (rule == null || status == Status.Fail) return status;
            var text = r.Read(start);
            return status == Status.Ok ? (rule.Allows(text) ? Status.Ok : Status.Fail) : (rule.AllowsStart(text, integer) ? Status.Partial : Status.Fail);
        }
    }

    /// <summary>What a <c>$ref</c> points at, set once compiled (it may be this node's own ancestor: recursive schemas).</summary>
    private sealed class RefNode(string pointer) : Node
    {
        public Node? Target { get; set; }

        /// <summary>Whether following references from here comes back to <paramref name="node"/> without reading anything.</summary>
        public bool LeadsTo(RefNode node)
        {
            for (Node? at = this; at is RefNode r; at = r.Target)
                if (ReferenceEquals(r.Target, node)) return true;
            return false;
        }

        public override Status Parse(ref Reader r)
        {
            // A reference that comes back to itself without reading (anyOf: [{"$ref": "#"}]) would recurse forever.
            if (++r.Depth > Reader.MaxDepth) return Status.Fail;
            var status = (Target ?? throw new InvalidOperationException($"{pointer} is not compiled")).Parse(ref r);
            r.Depth--;
            return status;
        }

        protected override Status Value(ref Reader r) => throw new InvalidOperationException("a reference reads through its target");
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
            int start = r.Position, end = -1, open = 0;
            bool partial = false, free = false, restsHold = true;
            List<byte[]>? rests = null;
            StringRules? rules = null;
            foreach (var option in options)
            {
                r.Position = start;
                r.EndedInFreeString = false;
                r.StringRests = null;
                r.EndedInRules = null;
                var status = option.Parse(ref r);
                if (status == Status.Ok && end < 0) end = r.Position;
                if (status != Status.Partial) continue;
                partial = true;
                open++;
                rules = r.EndedInRules;
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
            // A rule string's answer is the union's only where it is the one option still open.
            r.EndedInRules = open == 1 ? rules : null;
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

    /// <summary>An array of <paramref name="items"/>, <paramref name="minItems"/> to <paramref name="maxItems"/> (null: any number) of them.</summary>
    private sealed class ArrayNode(Node items, int minItems, int? maxItems) : Node
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
                return minItems == 0 ? Status.Ok : Status.Fail;
            }
            if (maxItems == 0) return Status.Fail;
            for (int count = 1; ; count++)
            {
                var item = items.Parse(ref r);
                if (item != Status.Ok) return item;
                ws = r.SkipWhitespace();
                if (ws != Status.Ok) return ws;
                byte b = r.Current;
                r.Position++;
                if (b == ']') return count >= minItems ? Status.Ok : Status.Fail;
                if (b != ',' || count == maxItems) return Status.Fail;
            }
        }
    }

    /// <summary>
    /// An object: its listed properties (each at most once), others where <paramref name="additional"/> takes them, the
    /// required ones before it closes, and between <paramref name="least"/> and <paramref name="most"/> properties. A
    /// property is taken only where the object can still end: once the required names still missing fill what
    /// <paramref name="most"/> leaves, only they may come next.
    /// </summary>
    private sealed class ObjectNode(Dictionary<string, Node> properties, HashSet<string> required, Node? additional, int least = 0, int? most = null) : Node
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
                    return required.Count == 0 && least == 0 ? Status.Ok : Status.Fail;
                }
                first = false;
                bool onlyRequired = Slack(seen) == 0;
                var key = r.ReadString(keyText);
                string name = keyText.ToString();
                if (key == Status.Fail) return Status.Fail;
                if (key == Status.Partial)
                {
                    if (additional != null && !onlyRequired) return Status.Partial;
                    var rests = Rests((onlyRequired ? (IEnumerable<string>)required : properties.Keys).Where(k => !seen.Contains(k)), r.PartialBytes, r.PartialEscape);
                    if (rests.Count == 0) return Status.Fail;
                    if (r.EndedInString) r.StringRests = rests;
                    return Status.Partial;
                }
                if (seen.Contains(name) || !(properties.ContainsKey(name) || additional != null) || (onlyRequired && !required.Contains(name))) return Status.Fail;
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
                if (b == '}') return required.IsSubsetOf(seen) && seen.Count >= least ? Status.Ok : Status.Fail;
                // Another property only where one may still come.
                if (b != ',' || !MayTakeAnother(seen)) return Status.Fail;
            }
        }

        /// <summary>How many properties past the required ones still missing the object may still take (unbounded: int.MaxValue).</summary>
        private int Slack(HashSet<string> seen) => most is int m ? m - seen.Count - required.Count(k => !seen.Contains(k)) : int.MaxValue;

        private bool MayTakeAnother(HashSet<string> seen) => Slack(seen) > 0
            ? additional != null || properties.Keys.Any(k => !seen.Contains(k))
            : required.Any(k => !seen.Contains(k));
    }
}
