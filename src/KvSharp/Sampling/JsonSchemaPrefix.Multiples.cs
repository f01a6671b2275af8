using System.Numerics;
using System.Text.Json;

namespace KvSharp.Sampling;

public sealed partial class JsonSchemaPrefix
{
    /// <summary>What a number's text is held to: whether a whole one is allowed, and whether a start can still end as one.</summary>
    private interface INumberRule
    {
        /// <summary>Whether a whole number (its text) is allowed.</summary>
        bool Allows(string number);

        /// <summary>Whether the start of a number (sign, digits, a point, fraction digits) can still end as an allowed one.</summary>
        bool AllowsStart(string prefix, bool integer);
    }

    /// <summary>
    /// <c>multipleOf</c> with the number's bounds, both read exactly (<see cref="Decimal10"/>). The step must be a
    /// positive terminating decimal (a/10^d: 7, 0.01, 2.5): then the multiples are exactly the numbers with at most d
    /// fraction digits (past those only zeros) whose value times 10^d is a multiple of a, and an integer's are those of
    /// the least common multiple of the step and 1. A start leaves open magnitudes that are unions of intervals (as
    /// <see cref="NumberBounds"/> reads them: more digits scale it by tens, fraction digits narrow it), and it is allowed
    /// exactly where one of them, within the bounds, holds a multiple: so no prefix is a dead end. A number held to
    /// multipleOf is written without an exponent, as a bounded one is: a model can always write the plain form.
    /// </summary>
    private sealed class NumberMultiples : INumberRule
    {
        private readonly Decimal10 _step, _integerStep;
        /// <summary>The bounds, null where there is none on that side.</summary>
        private readonly Decimal10? _low, _high;
        private readonly bool _lowIncluded, _highIncluded;

        private NumberMultiples(Decimal10 step, Decimal10? low, bool lowIncluded, Decimal10? high, bool highIncluded)
        {
            _step = step.Reduced();
            // An integer that is a multiple of a/10^d is one of a / gcd(a, 10^d): 2.5 = 25/10 gives 5, 0.5 gives 1.
            _integerStep = new Decimal10(_step.Units / BigInteger.GreatestCommonDivisor(_step.Units, BigInteger.Pow(10, _step.Scale)), 0);
            (_low, _lowIncluded, _high, _highIncluded) = (low, lowIncluded, high, highIncluded);
        }

        /// <summary>The rule of a schema with <c>multipleOf</c>, for an integer or any number; refused where no such number is within its bounds.</summary>
        public static NumberMultiples Of(JsonElement s, string path, bool integer)
        {
            var step = Step(s.GetProperty("multipleOf"), path + ".multipleOf");
            (Decimal10? Value, bool Included) Bound(string inclusive, string exclusive, int tighter)
            {
                Decimal10? i = s.TryGetProperty(inclusive, out var v) ? Decimal10.Of(v, $"{path}.{inclusive}") : null;
                Decimal10? x = s.TryGetProperty(exclusive, out v) ? Decimal10.Of(v, $"{path}.{exclusive}") : null;
                // Where both are given, the tighter one holds; at the same value, the exclusive one.
                return i == null ? (x, false) : x == null ? (i, true) : i.Value.CompareTo(x.Value) * tighter > 0 ? (i, true) : (x, false);
            }
            var (low, lowIncluded) = Bound("minimum", "exclusiveMinimum", tighter: 1);
            var (high, highIncluded) = Bound("maximum", "exclusiveMaximum", tighter: -1);
            var rule = new NumberMultiples(step, low, lowIncluded, high, highIncluded);
            if (!rule.Holds(null, false, null, false, integer))
                throw new ArgumentException($"{path}: no {(integer ? "integer" : "number")} within its bounds is a multiple of {step}");
            return rule;
        }

        /// <summary>A multipleOf value: a positive number (a terminating decimal, as JSON writes every number).</summary>
        public static Decimal10 Step(JsonElement value, string path)
        {
            var step = Decimal10.Of(value, path);
            return step.Units.Sign > 0 ? step.Reduced() : throw new ArgumentException($"{path} must be a positive number, got {value.GetRawText()}");
        }

        public bool Allows(string number)
        {
            var v = Decimal10.Parse(number);
            return Within(v) && v.IsMultipleOf(_step);
        }

        public bool AllowsStart(string prefix, bool integer)
        {
            bool negative = prefix.StartsWith('-');
            string digits = negative ? prefix[1..] : prefix;
            // A sign alone: any number not above zero ("-0" is zero).
            if (digits.Length == 0) return negative ? Holds(null, false, Decimal10.Zero, true, integer) : Holds(null, false, null, false, integer);
            int point = digits.IndexOf('.');
            if (point >= 0)
            {
                // Digits after the point narrow the magnitude to [so far, so far + 10^-(fraction digits)).
                var from = Decimal10.Parse(digits);
                return Magnitude(negative, from, from.Plus(new Decimal10(BigInteger.One, from.Scale)), integer);
            }
            var value = Decimal10.Parse(digits);
            // Itself, or itself with a fraction: [D, D + 1) (an integer's holds D alone).
            if (Magnitude(negative, value, value.Plus(new Decimal10(BigInteger.One, 0)), integer)) return true;
            // A leading zero takes no more digits; other digits may be followed by k more: [D * 10^k, (D + 1) * 10^k).
            // This ends: once the interval is past a bound there is nothing further, and without that bound, once it is
            // within the other and at least a step wide, it holds a multiple.
            if (value.Units.IsZero) return false;
            var next = value.Plus(new Decimal10(BigInteger.One, 0));
            for (int k = 1; ; k++)
            {
                Decimal10 from = value.Times10(k), to = next.Times10(k);
                if (Magnitude(negative, from, to, integer)) return true;
                if (negative ? _low is { } low && from.Negated() < low : _high is { } high && from > high) return false;
            }
        }

        /// <summary>Whether a number of magnitude in [from, to) with the sign is an allowed one.</summary>
        private bool Magnitude(bool negative, Decimal10 from, Decimal10 to, bool integer) =>
            negative ? Holds(to.Negated(), false, from.Negated(), true, integer) : Holds(from, true, to, false, integer);

        private bool Within(Decimal10 v) =>
            (_low is not { } low || (_lowIncluded ? v >= low : v > low)) && (_high is not { } high || (_highIncluded ? v <= high : v < high));

        /// <summary>
        /// Whether the interval from <paramref name="from"/> to <paramref name="to"/> (null: unbounded that way; ends
        /// included as said), within the bounds, holds a multiple of the step (for an integer, of the integer step).
        /// </summary>
        private bool Holds(Decimal10? from, bool fromIncluded, Decimal10? to, bool toIncluded, bool integer)
        {
            var (lo, loIn) = Tighter(from, fromIncluded, _low, _lowIncluded, above: true);
            var (hi, hiIn) = Tighter(to, toIncluded, _high, _highIncluded, above: false);
            // Unbounded on a side, multiples go on that way for ever.
            if (lo is not { } l || hi is not { } h) return true;
            var step = integer ? _integerStep : _step;
            // All three as integers over one power of ten.
            int scale = Math.Max(step.Scale, Math.Max(l.Scale, h.Scale));
            BigInteger lowUnits = l.Units * BigInteger.Pow(10, scale - l.Scale), highUnits = h.Units * BigInteger.Pow(10, scale - h.Scale),
                stepUnits = step.Units * BigInteger.Pow(10, scale - step.Scale);
            // The first multiple at or above the low end (past it where that end is excluded).
            var k = BigInteger.DivRem(lowUnits, stepUnits, out var remainder);
            if (remainder.Sign > 0 || remainder.IsZero && !loIn) k += 1;
            var first = k * stepUnits;
            return first < highUnits || first == highUnits && hiIn;
        }

        /// <summary>The tighter of two ends (null: none), the low one where <paramref name="above"/>; at one value, excluded wins.</summary>
        private static (Decimal10?, bool) Tighter(Decimal10? a, bool aIncluded, Decimal10? b, bool bIncluded, bool above)
        {
            if (a is not { } x) return (b, bIncluded);
            if (b is not { } y) return (a, aIncluded);
            int c = x.CompareTo(y) * (above ? 1 : -1);
            return c > 0 ? (a, aIncluded) : c < 0 ? (b, bIncluded) : (a, aIncluded && bIncluded);
        }
    }
}
