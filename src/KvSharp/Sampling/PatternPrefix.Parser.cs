namespace KvSharp.Sampling;

/// <summary>The pattern's text read into terms, the subset checked and what is outside it named.</summary>
public sealed partial class PatternPrefix
{
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
}
