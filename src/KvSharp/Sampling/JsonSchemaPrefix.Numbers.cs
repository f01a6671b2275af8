using System.Globalization;
using System.Text.Json;

namespace KvSharp.Sampling;

public sealed partial class JsonSchemaPrefix
{
    /// <summary>
    /// A number's bounds (<c>minimum</c>, <c>maximum</c>, <c>exclusiveMinimum</c>, <c>exclusiveMaximum</c>), and
    /// whether a number written so far can still end within them: what the digits so far leave open is a union of
    /// intervals (more digits scale it by tens), each tested against the bounds, so no prefix is a dead end. A bounded
    /// number is written without an exponent (which would make every prefix open).
    /// </summary>
    private sealed class NumberBounds(double low, bool lowIncluded, double high, bool highIncluded) : INumberRule
    {
        public static NumberBounds? Of(JsonElement s, string path, bool integer)
        {
            double? Bound(string keyword) => !s.TryGetProperty(keyword, out var v) ? null
                : v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new ArgumentException($"{path}.{keyword} must be a number");
            double? min = Bound("minimum"), max = Bound("maximum"), xmin = Bound("exclusiveMinimum"), xmax = Bound("exclusiveMaximum");
            if (min == null && max == null && xmin == null && xmax == null) return null;
            // Where both are given, the tighter one holds.
            bool lowIncluded = xmin == null || min != null && min > xmin, highIncluded = xmax == null || max != null && max < xmax;
            double low = lowIncluded ? min ?? double.NegativeInfinity : xmin!.Value, high = highIncluded ? max ?? double.PositiveInfinity : xmax!.Value;
            var bounds = new NumberBounds(low, lowIncluded, high, highIncluded);
            if (!bounds.Meets(low, true, high, true)) throw new ArgumentException($"{path}: no number is within its bounds");
            // Bounds with numbers but no integer between them (exclusive 23 to 24) would leave an integer no way to end.
            if (integer)
            {
                double nearest = !double.IsInfinity(low) ? (Math.Ceiling(low) == low && !lowIncluded ? low + 1 : Math.Ceiling(low))
                    : !double.IsInfinity(high) ? (Math.Floor(high) == high && !highIncluded ? high - 1 : Math.Floor(high)) : 0;
                if (!bounds.Meets(nearest, true, nearest, true)) throw new ArgumentException($"{path}: no integer is within its bounds");
            }
            return bounds;
        }

        /// <summary>Whether a whole number is within the bounds.</summary>
        public bool Allows(string number)
        {
            double v = double.Parse(number, NumberStyles.Float, CultureInfo.InvariantCulture);
            return Meets(v, true, v, true);
        }

        /// <summary>Whether the start of a number (sign, digits, a point, fraction digits) can still end within the bounds.</summary>
        public bool AllowsStart(string prefix, bool integer)
        {
            bool negative = prefix.StartsWith('-');
            string digits = negative ? prefix[1..] : prefix;
            // The magnitudes still open, as half-open intervals [from, to) (an integer's [from, from + 1) means itself).
            if (digits.Length == 0) return negative ? Meets(double.NegativeInfinity, false, 0, true) : Meets(double.NegativeInfinity, false, double.PositiveInfinity, false);
            int point = digits.IndexOf('.');
            if (point >= 0)
            {
                string whole = digits[..point], fraction = digits[(point + 1)..];
                double from = double.Parse(whole + "." + fraction + "0", CultureInfo.InvariantCulture);
                return Magnitude(negative, from, from + Math.Pow(10, -fraction.Length), integer);
            }
            double value = double.Parse(digits, CultureInfo.InvariantCulture);
            if (Magnitude(negative, value, value + 1, integer)) return true;
            // A leading zero takes no more digits; other digits may be followed by more, each a decade further.
            if (digits == "0") return false;
            for (int k = 1; k <= 20 - digits.Length; k++)
            {
                double scale = Math.Pow(10, k);
                if (Magnitude(negative, value * scale, (value + 1) * scale, integer)) return true;
            }
            return false;
        }

        /// <summary>Whether some value of magnitude in [from, to) (an integer: from itself, where the interval is one) with the sign is within the bounds.</summary>
        private bool Magnitude(bool negative, double from, double to, bool integer)
        {
            if (integer) to -= 1;
            bool toIncluded = integer;
            return negative ? Meets(-to, toIncluded, -from, true) : Meets(from, true, to, toIncluded);
        }

        /// <summary>Whether [a, b] (ends included as said) meets the bounds.</summary>
        private bool Meets(double a, bool aIncluded, double b, bool bIncluded)
        {
            var (lo, loIn) = a > low ? (a, aIncluded) : a < low ? (low, lowIncluded) : (a, aIncluded && lowIncluded);
            var (hi, hiIn) = b < high ? (b, bIncluded) : b > high ? (high, highIncluded) : (b, bIncluded && highIncluded);
            return lo < hi || lo == hi && loIn && hiIn;
        }
    }
}
