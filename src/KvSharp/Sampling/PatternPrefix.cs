using System.Buffers;
using System.Numerics;
using System.Text;

namespace KvSharp.Sampling;

/// <summary>
/// A JSON Schema <c>pattern</c> (an ECMA-262 regular expression) held as a Thompson NFA over Unicode code points, so
/// that a reply generated a token at a time can be checked prefix by prefix: <see cref="Viable"/> says some
/// continuation of the text is still a match, <see cref="Matches"/> that the text is one now. As JSON Schema reads
/// patterns, a match may be anywhere in the string: <c>^</c> and <c>$</c> anchor to its start and end (there is no
/// multiline flag), elsewhere the pattern behaves as if wrapped in <c>[\s\S]*</c>. The subset: literals, <c>.</c>,
/// classes <c>[...]</c> and <c>[^...]</c> with ranges, the escapes <c>\d \D \w \W \s \S \t \n \r \f \v \0 \cX
/// \xHH \uHHHH \u{H...}</c> and escaped punctuation, groups (capturing, <c>(?:)</c>, named), <c>|</c>, the quantifiers
/// <c>* + ? {n} {n,} {n,m}</c> greedy or lazy (one language either way), <c>^</c> and <c>$</c> anywhere. What
/// needs more than a finite automaton (backreferences, lookaround, <c>\b</c>, <c>\p{...}</c>, flags) is refused by
/// name, as is a pattern over <see cref="MaxStates"/> states once counted repetitions are written out.
/// </summary>
/// <remarks>
/// States that cannot reach a match are pruned when the pattern is compiled, so a text is viable exactly when its set
/// of live states is not empty. Each call reads the text from its start: one pass, a bitset per step, on the stack.
/// </remarks>
public sealed class PatternPrefix
{
    /// <summary>Most character-taking states a pattern may compile to (counted repetitions written out).</summary>
    public const int MaxStates = 4096;

    /// <summary>Deepest nesting of groups read (deeper would recurse too deep to be worth it).</summary>
    private const int MaxNesting = 200;

    private const int MaxCodePoint = 0x10FFFF;

    private readonly int _words;              // ulongs in one state set
    private readonly int _accept;             // the pseudo-state "the text may end here"
    private readonly ulong[] _start;          // the set before any code point
    private readonly ulong[] _follow;         // per state, _words each: the set after it takes a code point
    private readonly (int First, int Count)[] _followWords; // per state, the words of its row not zero: what a step ORs
    private readonly int[] _boundaries;       // first code point of each interval no class splits
    private readonly int[] _asciiInterval;    // interval of each ASCII code point, read without a search
    private readonly ulong[] _takers;         // per interval, _words each: the states whose class holds it
    private readonly ulong[]? _viableForever; // states that take anything and stay: viable whatever follows
    private readonly ulong[]? _matchesForever;// such states that also accept: a match whatever follows

    private PatternPrefix(string pattern, Automaton a)
    {
        Pattern = pattern;
        _words = a.Words;
        _accept = a.Accept;
        _start = a.Start;
        _follow = a.Follow;
        _followWords = a.FollowWords;
        _boundaries = a.Boundaries;
        _asciiInterval = a.AsciiInterval;
        _takers = a.Takers;
        _viableForever = a.ViableForever;
        _matchesForever = a.MatchesForever;
    }

    /// <summary>The pattern as given.</summary>
    public string Pattern { get; }

    /// <summary>The checker for <paramref name="pattern"/>.</summary>
    /// <exception cref="ArgumentException">A feature outside the subset, or a malformed pattern, named with <paramref name="path"/> (e.g. "schema.properties.code.pattern: lookahead (?=...) is not supported in a constrained reply").</exception>
    public static PatternPrefix Parse(string pattern, string path)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var term = new Parser(pattern, path).ParseWhole();
        if (Term.Weight(term) > MaxStates)
            throw new ArgumentException($"{path}: the pattern is too large for a constrained reply (over {MaxStates} states after expanding counted repetitions)");
        return new PatternPrefix(pattern, Automaton.Compile(term));
    }

    /// <summary>Whether some continuation of <paramref name="text"/> (possibly none) is a string the pattern matches.</summary>
    public bool Viable(ReadOnlySpan<char> text) => Run(text, viable: true);

    /// <summary>Whether <paramref name="text"/> itself is a string the pattern matches.</summary>
    public bool Matches(ReadOnlySpan<char> text) => Run(text, viable: false);

    /// <summary>
    /// Whether <paramref name="text"/> followed by some code point in [<paramref name="first"/>, <paramref name="last"/>]
    /// is <see cref="Viable"/>: for a character not yet whole (a UTF-8 sequence or a JSON escape cut off), which may
    /// still become any of them.
    /// </summary>
    public bool ViableWithAnyOf(ReadOnlySpan<char> text, int first, int last)
    {
        if (first > last) return false;
        Span<ulong> current = stackalloc ulong[_words];
        var read = Read(text, current, _viableForever);
        if (read != ReadResult.Open) return read == ReadResult.Settled;
        // Every state left can reach a match, so one that takes a code point of the range is enough; an interval holds
        // code points no class tells apart.
        for (int interval = IntervalOf(first), end = IntervalOf(Math.Min(last, MaxCodePoint)); interval <= end; interval++)
            if (Overlaps(current, _takers.AsSpan(interval * _words, _words))) return true;
        return false;
    }

    private bool Run(ReadOnlySpan<char> text, bool viable)
    {
        Span<ulong> current = stackalloc ulong[_words];
        var read = Read(text, current, viable ? _viableForever : _matchesForever);
        if (read != ReadResult.Open) return read == ReadResult.Settled;
        return viable ? current.ContainsAnyExcept(0UL) : (current[_accept >> 6] & (1UL << _accept)) != 0;
    }

    private enum ReadResult { Dead, Settled, Open }

    /// <summary>
    /// Reads <paramref name="text"/> from the start set into <paramref name="current"/>: Dead where no state takes a
    /// code point, Settled where a state of <paramref name="settled"/> is reached (past it the rest of the text cannot
    /// change the answer: unanchored patterns stop reading there), else Open with the states after it.
    /// </summary>
    private ReadResult Read(ReadOnlySpan<char> text, Span<ulong> current, ReadOnlySpan<ulong> settled)
    {
        int words = _words;
        Span<ulong> sets = stackalloc ulong[2 * words];
        Span<ulong> at = sets[..words], next = sets[words..];
        _start.CopyTo(at);
        for (int i = 0; i < text.Length;)
        {
            if (!settled.IsEmpty && Overlaps(at, settled)) return ReadResult.Settled;
            if (!Step(at, next, NextCodePoint(text, ref i))) return ReadResult.Dead;
            var taken = at;
            at = next;
            next = taken;
        }
        if (!settled.IsEmpty && Overlaps(at, settled)) return ReadResult.Settled;
        at.CopyTo(current);
        return ReadResult.Open;
    }

    /// <summary>Moves the states in <paramref name="current"/> over <paramref name="codePoint"/>; false where none takes it.</summary>
    private bool Step(ReadOnlySpan<ulong> current, Span<ulong> next, int codePoint)
    {
        int words = _words;
        next.Clear();
        var takers = _takers.AsSpan(IntervalOf(codePoint) * words, words);
        bool moved = false;
        for (int w = 0; w < words; w++)
        {
            ulong bits = current[w] & takers[w];
            while (bits != 0)
            {
                int state = (w << 6) + BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                var (first, count) = _followWords[state];
                var follow = _follow.AsSpan(state * words + first, count);
                var into = next.Slice(first, count);
                for (int k = 0; k < follow.Length; k++) into[k] |= follow[k];
                moved = true;
            }
        }
        return moved;
    }

    private int IntervalOf(int codePoint)
    {
        if (codePoint < 128) return _asciiInterval[codePoint];
        int found = Array.BinarySearch(_boundaries, codePoint);
        return found >= 0 ? found : ~found - 1;
    }

    private static bool Overlaps(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b)
    {
        for (int w = 0; w < a.Length; w++)
            if ((a[w] & b[w]) != 0) return true;
        return false;
    }

    /// <summary>The code point at <paramref name="i"/>, stepping past it; a lone surrogate is one of its own.</summary>
    private static int NextCodePoint(ReadOnlySpan<char> text, ref int i)
    {
        char c = text[i];
        if (!char.IsSurrogate(c))
        {
            i++;
            return c;
        }
        if (Rune.DecodeFromUtf16(text[i..], out var rune, out int used) == OperationStatus.Done)
        {
            i += used;
            return rune.Value;
        }
        i++;
        return c;
    }

    /// <summary>A set of code points as sorted, disjoint, non-adjacent inclusive ranges.</summary>
    private sealed class CodePointSet : IEquatable<CodePointSet>
    {
        private readonly (int Lo, int Hi)[] _ranges;

        private CodePointSet((int Lo, int Hi)[] normalized) => _ranges = normalized;

        public static readonly CodePointSet All = new([(0, MaxCodePoint)]);
        public static readonly CodePointSet Digits = Of([('0', '9')]);
        public static readonly CodePointSet WordCharacters = Of([('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]);

        /// <summary>ECMA-262 WhiteSpace and LineTerminator: ASCII's, U+00A0, U+FEFF and the Zs category (Unicode 15).</summary>
        public static readonly CodePointSet Whitespace = Of([('\t', '\r'), (' ', ' '), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
            (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)]);

        /// <summary>What <c>.</c> takes: anything but a line terminator.</summary>
        public static readonly CodePointSet NotLineTerminator = Of([('\n', '\n'), ('\r', '\r'), (0x2028, 0x2029)]).Complement();

        public ReadOnlySpan<(int Lo, int Hi)> Ranges => _ranges;
        public bool IsEmpty => _ranges.Length == 0;
        public bool IsAll => _ranges is [(0, MaxCodePoint)];

        public static CodePointSet Single(int codePoint) => new([(codePoint, codePoint)]);

        public static CodePointSet Of(IEnumerable<(int Lo, int Hi)> ranges)
        {
            var merged = new List<(int Lo, int Hi)>();
            foreach (var (lo, hi) in ranges.OrderBy(r => r.Lo))
                if (merged.Count > 0 && lo <= merged[^1].Hi + 1) merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, hi));
                else merged.Add((lo, hi));
            return new([.. merged]);
        }

        public CodePointSet Complement()
        {
            var gaps = new List<(int, int)>();
            int from = 0;
            foreach (var (lo, hi) in _ranges)
            {
                if (lo > from) gaps.Add((from, lo - 1));
                from = hi + 1;
            }
            if (from <= MaxCodePoint) gaps.Add((from, MaxCodePoint));
            return new([.. gaps]);
        }

        public bool Contains(int codePoint)
        {
            int lo = 0, hi = _ranges.Length - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >> 1;
                if (codePoint < _ranges[mid].Lo) hi = mid - 1;
                else if (codePoint > _ranges[mid].Hi) lo = mid + 1;
                else return true;
            }
            return false;
        }

        public bool Equals(CodePointSet? other) => other != null && _ranges.AsSpan().SequenceEqual(other._ranges);
        public override bool Equals(object? obj) => Equals(obj as CodePointSet);
        public override int GetHashCode()
        {
            var hash = new HashCode();
            foreach (var r in _ranges) hash.Add(r);
            return hash.ToHashCode();
        }
    }

    /// <summary>The parsed pattern: what the NFA is built from.</summary>
    private abstract record Term
    {
        public static readonly Term Empty = new Sequence([]);

        /// <summary>
        /// The states <paramref name="term"/> compiles to, counted repetitions written out, capped just past
        /// <see cref="MaxStates"/> so a nested count cannot overflow; an empty term counts one, so that repeating it
        /// is bounded too.
        /// </summary>
        public static long Weight(Term term) => Math.Min(MaxStates + 1L, term switch
        {
            Sequence s => Math.Max(1L, s.Items.Sum(Weight)),
            Choice c => c.Options.Sum(Weight),
            Repeat r => Weight(r.Body) * (r.Max < 0 ? r.Min + 1L : r.Max),
            _ => 1L,
        });
    }

    private sealed record Take(CodePointSet Set) : Term;
    private sealed record Sequence(Term[] Items) : Term;
    private sealed record Choice(Term[] Options) : Term;
    /// <summary><paramref name="Max"/> -1: no upper bound.</summary>
    private sealed record Repeat(Term Body, int Min, int Max) : Term;
    /// <summary><c>^</c> (<paramref name="AtStart"/>) or <c>$</c>.</summary>
    private sealed record Anchor(bool AtStart) : Term;

    /// <summary>Recursive descent over ECMA-262's pattern grammar (with Annex B's literal <c>{</c>, <c>}</c> and <c>]</c>).</summary>
    private sealed class Parser(string pattern, string path)
    {
        private int _at;
        private int _depth;

        private bool AtEnd => _at >= pattern.Length;
        private char Peek => pattern[_at];

        public Term ParseWhole()
        {
            var term = ParseDisjunction();
            if (!AtEnd) throw Malformed("unmatched ')'");
            return term;
        }

        private ArgumentException Unsupported(string feature) => new($"{path}: {feature} is not supported in a constrained reply");

        private ArgumentException Malformed(string what, int? at = null) =>
            new($"{path}: '{pattern}' is not a valid pattern: {what} at offset {at ?? _at}");

        private bool Eat(char c)
        {
            if (AtEnd || Peek != c) return false;
            _at++;
            return true;
        }

        private Term ParseDisjunction()
        {
            var options = new List<Term> { ParseAlternative() };
            while (Eat('|')) options.Add(ParseAlternative());
            return options.Count == 1 ? options[0] : new Choice([.. options]);
        }

        private Term ParseAlternative()
        {
            var items = new List<Term>();
            while (!AtEnd && Peek is not ('|' or ')')) items.Add(ParseTerm());
            return items.Count == 1 ? items[0] : new Sequence([.. items]);
        }

        private Term ParseTerm()
        {
            int at = _at;
            switch (Peek)
            {
                case '^' or '$':
                    _at++;
                    if (IsQuantifierHere()) throw Malformed("nothing to repeat (an anchor)", _at);
                    return new Anchor(pattern[at] == '^');
                case '*' or '+' or '?':
                    throw Malformed("nothing to repeat");
                case '{' when TryBraces(out _, out _, advance: false):
                    throw Malformed("nothing to repeat");
            }
            return ParseQuantifier(ParseAtom());
        }

        private Term ParseAtom()
        {
            switch (Peek)
            {
                case '(': return ParseGroup();
                case '[': return ParseClass();
                case '.':
                    _at++;
                    return new Take(CodePointSet.NotLineTerminator);
                case '\\':
                    _at++;
                    return new Take(ParseEscape(inClass: false));
                default:
                    return new Take(CodePointSet.Single(NextCodePoint(pattern, ref _at)));
            }
        }

        private bool IsQuantifierHere() => !AtEnd && (Peek is '*' or '+' or '?' || (Peek == '{' && TryBraces(out _, out _, advance: false)));

        private Term ParseQuantifier(Term atom)
        {
            if (AtEnd) return atom;
            int at = _at;
            int min, max;
            switch (Peek)
            {
                case '*': (min, max) = (0, -1); _at++; break;
                case '+': (min, max) = (1, -1); _at++; break;
                case '?': (min, max) = (0, 1); _at++; break;
                case '{' when TryBraces(out min, out max, advance: true): break;
                default: return atom;
            }
            if (max >= 0 && min > max) throw Malformed("numbers out of order in {n,m}", at);
            Eat('?'); // lazy: another order of trying, the same strings matched
            if (IsQuantifierHere()) throw Malformed("nothing to repeat (a quantifier after a quantifier)");
            return new Repeat(atom, min, max);
        }

        /// <summary>A braced quantifier <c>{n}</c>, <c>{n,}</c> or <c>{n,m}</c> at the position; counts past int.MaxValue are held there.</summary>
        private bool TryBraces(out int min, out int max, bool advance)
        {
            int i = _at + 1;
            min = max = 0;
            if (!ReadNumber(ref i, out min)) return false;
            max = min;
            if (i < pattern.Length && pattern[i] == ',')
            {
                i++;
                if (!ReadNumber(ref i, out max)) max = -1;
            }
            if (i >= pattern.Length || pattern[i] != '}') return false;
            if (advance) _at = i + 1;
            return true;
        }

        private bool ReadNumber(ref int i, out int value)
        {
            long n = 0;
            int start = i;
            while (i < pattern.Length && char.IsAsciiDigit(pattern[i])) n = Math.Min(int.MaxValue, n * 10 + (pattern[i++] - '0'));
            value = (int)n;
            return i > start;
        }

        private Term ParseGroup()
        {
            int at = _at++;
            if (Eat('?'))
            {
                if (Eat(':')) { }
                else if (!AtEnd && Peek == '=') throw Unsupported("lookahead (?=...)");
                else if (!AtEnd && Peek == '!') throw Unsupported("negative lookahead (?!...)");
                else if (Eat('<'))
                {
                    if (!AtEnd && Peek == '=') throw Unsupported("lookbehind (?<=...)");
                    if (!AtEnd && Peek == '!') throw Unsupported("negative lookbehind (?<!...)");
                    int nameStart = _at;
                    while (!AtEnd && (char.IsAsciiLetterOrDigit(Peek) || Peek is '_' or '$')) _at++;
                    if (_at == nameStart || !Eat('>')) throw Malformed("a group name must be letters, digits, _ or $ closed by '>'");
                }
                else if (!AtEnd && (char.IsAsciiLetter(Peek) || Peek == '-')) throw Unsupported("inline flags (?i) and modifiers (?i:...)");
                else throw Malformed("unknown group syntax (?");
            }
            if (++_depth > MaxNesting) throw Unsupported($"nesting groups more than {MaxNesting} deep");
            var body = ParseDisjunction();
            _depth--;
            if (!Eat(')')) throw Malformed("missing ')'", at);
            return body;
        }

        private Term ParseClass()
        {
            int at = _at++;
            bool negated = Eat('^');
            var ranges = new List<(int Lo, int Hi)>();
            while (true)
            {
                if (AtEnd) throw Malformed("missing ']'", at);
                if (Eat(']')) break;
                var (lo, loSet) = ParseClassAtom();
                // A '-' just before ']' is itself a member, not a range.
                if (_at + 1 < pattern.Length && Peek == '-' && pattern[_at + 1] != ']')
                {
                    int dash = _at++;
                    var (hi, hiSet) = ParseClassAtom();
                    if (loSet != null || hiSet != null) throw Malformed("a class escape such as \\d cannot bound a range", dash);
                    if (lo > hi) throw Malformed("range out of order in class", dash);
                    ranges.Add((lo, hi));
                }
                else if (loSet != null) ranges.AddRange(loSet.Ranges);
                else ranges.Add((lo, lo));
            }
            var set = CodePointSet.Of(ranges);
            return new Take(negated ? set.Complement() : set);
        }

        /// <summary>One class member: a code point, or a set for <c>\d</c> and the like.</summary>
        private (int CodePoint, CodePointSet? Set) ParseClassAtom()
        {
            if (!Eat('\\')) return (NextCodePoint(pattern, ref _at), null);
            if (!AtEnd && Peek == 'b')
            {
                _at++;
                return ('\b', null);
            }
            var set = ParseEscape(inClass: true);
            return set.Ranges is [var (lo, hi)] && lo == hi ? (lo, null) : (-1, set);
        }

        /// <summary>What follows a backslash, as a set (a single code point for a character escape).</summary>
        private CodePointSet ParseEscape(bool inClass)
        {
            if (AtEnd) throw Malformed("'\\' at the end of the pattern");
            int at = _at - 1;
            char e = pattern[_at++];
            switch (e)
            {
                case 'd': return CodePointSet.Digits;
                case 'D': return CodePointSet.Digits.Complement();
                case 'w': return CodePointSet.WordCharacters;
                case 'W': return CodePointSet.WordCharacters.Complement();
                case 's': return CodePointSet.Whitespace;
                case 'S': return CodePointSet.Whitespace.Complement();
                case 'b': throw Unsupported("word boundary \\b");
                case 'B': throw Unsupported(inClass ? "\\B in a class" : "non-word boundary \\B");
                case >= '1' and <= '9': throw Unsupported($"backreference \\{e}");
                case 'k': throw Unsupported("named backreference \\k<...>");
                case 'p' or 'P': throw Unsupported($"unicode property escape \\{e}{{...}}");
                case 't': return CodePointSet.Single('\t');
                case 'n': return CodePointSet.Single('\n');
                case 'v': return CodePointSet.Single('\v');
                case 'f': return CodePointSet.Single('\f');
                case 'r': return CodePointSet.Single('\r');
                case '0':
                    if (!AtEnd && char.IsAsciiDigit(Peek)) throw Unsupported("octal escape \\0" + Peek);
                    return CodePointSet.Single(0);
                case 'c':
                    if (AtEnd || !char.IsAsciiLetter(Peek)) throw Malformed("\\c must be followed by a letter", at);
                    return CodePointSet.Single(pattern[_at++] % 32);
                case 'x':
                    return CodePointSet.Single(ReadHex(2, at));
                case 'u':
                    return CodePointSet.Single(ParseUnicodeEscape(at));
                default:
                    if (char.IsAsciiLetterOrDigit(e)) throw Unsupported($"escape \\{e}");
                    _at--;
                    return CodePointSet.Single(NextCodePoint(pattern, ref _at));
            }
        }

        /// <summary><c>\u{H...}</c>, or <c>\uHHHH</c> (two of them a surrogate pair make one code point).</summary>
        private int ParseUnicodeEscape(int at)
        {
            if (Eat('{'))
            {
                int start = _at;
                long value = 0;
                while (!AtEnd && char.IsAsciiHexDigit(Peek) && value <= MaxCodePoint) value = value * 16 + HexValue(pattern[_at++]);
                if (_at == start || value > MaxCodePoint || !Eat('}')) throw Malformed("\\u{...} must hold a code point in hex", at);
                return (int)value;
            }
            int unit = ReadHex(4, at);
            if (char.IsHighSurrogate((char)unit) && _at + 6 <= pattern.Length && pattern[_at] == '\\' && pattern[_at + 1] == 'u'
                && int.TryParse(pattern.AsSpan(_at + 2, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out int low)
                && char.IsLowSurrogate((char)low))
            {
                _at += 6;
                return char.ConvertToUtf32((char)unit, (char)low);
            }
            return unit;
        }

        private int ReadHex(int digits, int at)
        {
            int value = 0;
            for (int k = 0; k < digits; k++)
            {
                if (AtEnd || !char.IsAsciiHexDigit(Peek)) throw Malformed($"\\{pattern[at + 1]} needs {digits} hex digits", at);
                value = value * 16 + HexValue(pattern[_at++]);
            }
            return value;
        }

        private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    }

    /// <summary>
    /// The compiled machine. Thompson's construction gives nodes that take a code point, nodes that only branch, and
    /// anchors; the checker keeps just the taking states (and a pseudo-state for "may end here"), each with the set
    /// it leads to through branches and anchors precomputed. An anchor is an edge passable only where it holds:
    /// <c>^</c> before the first code point, <c>$</c> where no code point follows; so past a <c>$</c> only the
    /// pseudo-state can be reached.
    /// </summary>
    private sealed class Automaton
    {
        public int Words { get; private set; }
        public int Accept { get; private set; }
        public ulong[] Start { get; private set; } = [];
        public ulong[] Follow { get; private set; } = [];
        public (int First, int Count)[] FollowWords { get; private set; } = [];
        public int[] Boundaries { get; private set; } = [];
        public int[] AsciiInterval { get; private set; } = [];
        public ulong[] Takers { get; private set; } = [];
        public ulong[]? ViableForever { get; private set; }
        public ulong[]? MatchesForever { get; private set; }

        private enum Kind : byte { Take, Branch, LineStart, LineEnd, Accept }

        /// <summary>A Thompson node: Take goes to Out after its set's code point; Branch to Out and Out2 (when ≥ 0) freely.</summary>
        private struct Node
        {
            public Kind Kind;
            public int Set;
            public int Out;
            public int Out2;
        }

        private readonly List<Node> _nodes = [];
        private readonly List<CodePointSet> _sets = [];
        private readonly Dictionary<CodePointSet, int> _setIds = [];

        public static Automaton Compile(Term pattern)
        {
            var a = new Automaton();
            // A match may be anywhere: [\s\S]* around the pattern (anchors inside it then decide).
            var anywhere = new Repeat(new Take(CodePointSet.All), 0, -1);
            int accept = a.Add(Kind.Accept);
            int start = a.Emit(new Sequence([anywhere, pattern, anywhere]), accept);
            a.Build(start);
            return a;
        }

        private int Add(Kind kind, int set = -1, int next = -1, int next2 = -1)
        {
            _nodes.Add(new Node { Kind = kind, Set = set, Out = next, Out2 = next2 });
            return _nodes.Count - 1;
        }

        /// <summary>The nodes for <paramref name="term"/>, built back to front: their entry, leading on to <paramref name="next"/>.</summary>
        private int Emit(Term term, int next)
        {
            switch (term)
            {
                case Take t:
                    if (!_setIds.TryGetValue(t.Set, out int id))
                    {
                        _setIds[t.Set] = id = _sets.Count;
                        _sets.Add(t.Set);
                    }
                    return Add(Kind.Take, id, next);
                case Anchor anchor:
                    return Add(anchor.AtStart ? Kind.LineStart : Kind.LineEnd, next: next);
                case Sequence s:
                    for (int i = s.Items.Length - 1; i >= 0; i--) next = Emit(s.Items[i], next);
                    return next;
                case Choice c:
                    int entry = Emit(c.Options[^1], next);
                    for (int i = c.Options.Length - 2; i >= 0; i--) entry = Add(Kind.Branch, next: Emit(c.Options[i], next), next2: entry);
                    return entry;
                case Repeat r:
                    int head;
                    if (r.Max < 0)
                    {
                        head = Add(Kind.Branch, next2: next);
                        var loop = _nodes[head];
                        loop.Out = Emit(r.Body, head);
                        _nodes[head] = loop;
                    }
                    else
                    {
                        // x{0,k} as (x(x(...)?)?)?: each optional copy may leave straight for next.
                        head = next;
                        for (int k = 0; k < r.Max - r.Min; k++) head = Add(Kind.Branch, next: Emit(r.Body, head), next2: next);
                    }
                    for (int k = 0; k < r.Min; k++) head = Emit(r.Body, head);
                    return head;
                default:
                    throw new InvalidOperationException(term.GetType().Name);
            }
        }

        /// <summary>
        /// Walks branch edges (and the anchors allowed) from <paramref name="from"/>: the Take nodes reached, into
        /// <paramref name="takes"/> when given; whether Accept is.
        /// </summary>
        private bool Walk(int from, bool lineStart, bool lineEnd, List<int>? takes, int[] seen, int stamp, Stack<int> stack)
        {
            bool accepts = false;
            stack.Push(from);
            while (stack.Count > 0)
            {
                int n = stack.Pop();
                if (n < 0 || seen[n] == stamp) continue;
                seen[n] = stamp;
                var node = _nodes[n];
                switch (node.Kind)
                {
                    case Kind.Take: takes?.Add(n); break;
                    case Kind.Accept: accepts = true; break;
                    case Kind.Branch: stack.Push(node.Out2); stack.Push(node.Out); break;
                    case Kind.LineStart when lineStart: stack.Push(node.Out); break;
                    case Kind.LineEnd when lineEnd: stack.Push(node.Out); break;
                }
            }
            return accepts;
        }

        private void Build(int startNode)
        {
            int count = _nodes.Count;
            var seen = new int[count];
            int stamp = 0;
            var stack = new Stack<int>();

            // Per Take node: where it leads after its code point (no '^' there), and whether the text may end then.
            var successors = new List<int>[count];
            var ends = new bool[count];
            for (int n = 0; n < count; n++)
            {
                if (_nodes[n].Kind != Kind.Take) continue;
                successors[n] = [];
                Walk(_nodes[n].Out, lineStart: false, lineEnd: false, successors[n], seen, ++stamp, stack);
                ends[n] = Walk(_nodes[n].Out, lineStart: false, lineEnd: true, null, seen, ++stamp, stack);
            }
            var initial = new List<int>();
            Walk(startNode, lineStart: true, lineEnd: false, initial, seen, ++stamp, stack);
            // In an empty text '^' and '$' both hold, in any order.
            bool emptyMatches = Walk(startNode, lineStart: true, lineEnd: true, null, seen, ++stamp, stack);

            // Live: takes some code point and leads on to an end. Backwards from the nodes that may end.
            var live = new bool[count];
            var predecessors = new List<int>?[count];
            var work = new Queue<int>();
            for (int n = 0; n < count; n++)
            {
                if (successors[n] == null || _sets[_nodes[n].Set].IsEmpty) continue;
                foreach (int s in successors[n]) (predecessors[s] ??= []).Add(n);
                if (ends[n])
                {
                    live[n] = true;
                    work.Enqueue(n);
                }
            }
            while (work.Count > 0)
                foreach (int p in predecessors[work.Dequeue()] ?? [])
                    if (!live[p])
                    {
                        live[p] = true;
                        work.Enqueue(p);
                    }

            // Kept: live and reachable from the start through live nodes, numbered densely.
            var index = new int[count];
            Array.Fill(index, -1);
            var kept = new List<int>();
            foreach (int n in initial)
                if (live[n] && index[n] < 0)
                {
                    index[n] = kept.Count;
                    kept.Add(n);
                }
            for (int k = 0; k < kept.Count; k++)
                foreach (int s in successors[kept[k]])
                    if (live[s] && index[s] < 0)
                    {
                        index[s] = kept.Count;
                        kept.Add(s);
                    }

            Accept = kept.Count;
            Words = (kept.Count + 1 + 63) / 64;
            Start = new ulong[Words];
            foreach (int n in initial)
                if (index[n] >= 0) Set(Start, index[n]);
            if (emptyMatches) Set(Start, Accept);
            Follow = new ulong[(kept.Count + 1) * Words];
            FollowWords = new (int, int)[kept.Count + 1];
            for (int k = 0; k < kept.Count; k++)
            {
                var row = Follow.AsSpan(k * Words, Words);
                foreach (int s in successors[kept[k]])
                    if (index[s] >= 0) Set(row, index[s]);
                if (ends[kept[k]]) Set(row, Accept);
                int first = row.IndexOfAnyExcept(0UL), last = row.LastIndexOfAnyExcept(0UL);
                FollowWords[k] = (first, last - first + 1);
            }
            BuildIntervals(kept);
            BuildForever(kept);
        }

        /// <summary>
        /// Splits the code points into intervals no kept state's class divides, each with the states that take it, so a
        /// step looks one row up instead of testing every state's class.
        /// </summary>
        private void BuildIntervals(List<int> kept)
        {
            var boundaries = new SortedSet<int> { 0 };
            var statesBySet = new Dictionary<int, ulong[]>();
            for (int k = 0; k < kept.Count; k++)
            {
                int set = _nodes[kept[k]].Set;
                if (!statesBySet.TryGetValue(set, out var states))
                {
                    statesBySet[set] = states = new ulong[Words];
                    foreach (var (lo, hi) in _sets[set].Ranges)
                    {
                        boundaries.Add(lo);
                        if (hi < MaxCodePoint) boundaries.Add(hi + 1);
                    }
                }
                Set(states, k);
            }
            Boundaries = [.. boundaries];
            Takers = new ulong[Boundaries.Length * Words];
            foreach (var (set, states) in statesBySet)
                for (int i = 0; i < Boundaries.Length; i++)
                    if (_sets[set].Contains(Boundaries[i]))
                    {
                        var row = Takers.AsSpan(i * Words, Words);
                        for (int w = 0; w < Words; w++) row[w] |= states[w];
                    }
            AsciiInterval = new int[128];
            for (int c = 0, i = 0; c < 128; c++)
            {
                while (i + 1 < Boundaries.Length && Boundaries[i + 1] <= c) i++;
                AsciiInterval[c] = i;
            }
        }

        private void BuildForever(List<int> kept)
        {
            var viable = new ulong[Words];
            var matches = new ulong[Words];
            bool anyViable = false, anyMatches = false;
            for (int k = 0; k < kept.Count; k++)
            {
                var row = Follow.AsSpan(k * Words, Words);
                if (!_sets[_nodes[kept[k]].Set].IsAll || !Has(row, k)) continue;
                Set(viable, k);
                anyViable = true;
                if (!Has(row, Accept)) continue;
                Set(matches, k);
                anyMatches = true;
            }
            ViableForever = anyViable ? viable : null;
            MatchesForever = anyMatches ? matches : null;
        }

        private static void Set(Span<ulong> bits, int i) => bits[i >> 6] |= 1UL << i;
        private static bool Has(ReadOnlySpan<ulong> bits, int i) => (bits[i >> 6] & (1UL << i)) != 0;
    }
}
