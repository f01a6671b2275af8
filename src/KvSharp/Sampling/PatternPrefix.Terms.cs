namespace KvSharp.Sampling;

/// <summary>What a pattern is made of: sets of code points and the terms the parser builds from them.</summary>
public sealed partial class PatternPrefix
{
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
}
