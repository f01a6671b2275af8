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
public sealed partial class PatternPrefix
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

    /// <summary>
    /// The checker for a whole text that <paramref name="pattern"/> matches from its first character to its last (vLLM's
    /// guided_regex), not a match somewhere inside it as JSON Schema reads a pattern.
    /// </summary>
    public static PatternPrefix WholeText(string pattern, string path)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        return Parse("^(?:" + pattern + ")$", path);
    }

    /// <summary>The checker for a whole text that is exactly one of <paramref name="choices"/> (vLLM's guided_choice).</summary>
    public static PatternPrefix OneOf(IReadOnlyList<string> choices, string path)
    {
        ArgumentNullException.ThrowIfNull(choices);
        if (choices.Count == 0) throw new ArgumentException($"{path}: give at least one choice");
        // Every ASCII character but letters and digits escaped: the parser takes an escaped one literally.
        static string Literal(string s) => string.Concat(s.Select(c => c < 0x80 && !char.IsAsciiLetterOrDigit(c) ? "\\" + c : c.ToString()));
        return WholeText(string.Join("|", choices.Select(Literal)), path);
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

    /// <summary>
    /// Words of a state set for the incremental reading below (<see cref="Begin"/>, <see cref="Advance"/>): a text
    /// read a piece at a time costs each piece only, where <see cref="Viable"/> reads the whole text again.
    /// </summary>
    public int StateWords => _words;

    /// <summary>The states before any text, into <paramref name="state"/> (<see cref="StateWords"/> long).</summary>
    public void Begin(Span<ulong> state) => _start.CopyTo(state);

    /// <summary>
    /// Moves <paramref name="state"/> over <paramref name="text"/>; false (the state then undefined) where the text so
    /// far can no longer become a match.
    /// </summary>
    public bool Advance(Span<ulong> state, ReadOnlySpan<char> text)
    {
        Span<ulong> next = stackalloc ulong[_words];
        for (int i = 0; i < text.Length;)
        {
            if (!Step(state, next, NextCodePoint(text, ref i))) return false;
            next.CopyTo(state);
        }
        return true;
    }

    /// <summary>Whether the text that led to <paramref name="state"/> is a match (pruned states make any state viable).</summary>
    public bool Accepts(ReadOnlySpan<ulong> state) => (state[_accept >> 6] & (1UL << _accept)) != 0;

    /// <summary>Whether some code point in [<paramref name="first"/>, <paramref name="last"/>] may follow the text that led to <paramref name="state"/>.</summary>
    public bool TakesAnyOf(ReadOnlySpan<ulong> state, int first, int last)
    {
        if (first > last) return false;
        for (int interval = IntervalOf(first), end = IntervalOf(Math.Min(last, MaxCodePoint)); interval <= end; interval++)
            if (Overlaps(state, _takers.AsSpan(interval * _words, _words))) return true;
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
}
