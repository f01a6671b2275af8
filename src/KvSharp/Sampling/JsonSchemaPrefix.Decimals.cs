using System.Globalization;
using System.Numerics;
using System.Text.Json;

namespace KvSharp.Sampling;

public sealed partial class JsonSchemaPrefix
{
    /// <summary>
    /// A number as JSON writes it, held exactly: <see cref="Units"/> / 10^<see cref="Scale"/> (Scale never negative).
    /// What multipleOf and merged bounds are compared in, where a double would round 0.1 and 0.3 away from a multiple.
    /// </summary>
    private readonly record struct Decimal10(BigInteger Units, int Scale) : IComparable<Decimal10>
    {
        /// <summary>Exponents past this are refused: 10^400 is already far beyond any bound a reply could need, and each digit costs.</summary>
        private const int MaxExponent = 400;

        public static Decimal10 Zero => new(BigInteger.Zero, 0);

        /// <summary>The value of a schema keyword that must be a number, named by <paramref name="path"/> where it is not.</summary>
        public static Decimal10 Of(JsonElement value, string path)
        {
            if (value.ValueKind != JsonValueKind.Number) throw new ArgumentException($"{path} must be a number");
            string text = value.GetRawText();
            int e = text.IndexOfAny(['e', 'E']);
            string mantissa = e < 0 ? text : text[..e];
            int exponent = e < 0 ? 0 : int.TryParse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int x) && Math.Abs(x) <= MaxExponent ? x
                : throw new ArgumentException($"{path} {text} is too large or too small a number for a constrained reply (exponents up to {MaxExponent})");
            var number = Parse(mantissa);
            return exponent >= 0 ? number.Times10(exponent) : number with { Scale = number.Scale - exponent };
        }

        /// <summary>A number's text without an exponent: an optional '-', digits, and an optional point with digits after it (or none yet).</summary>
        public static Decimal10 Parse(string text)
        {
            bool negative = text.StartsWith('-');
            string digits = negative ? text[1..] : text;
            int point = digits.IndexOf('.');
            string whole = point < 0 ? digits : digits[..point], fraction = point < 0 ? "" : digits[(point + 1)..];
            var units = BigInteger.Parse(whole + fraction, NumberStyles.None, CultureInfo.InvariantCulture);
            return new Decimal10(negative ? -units : units, fraction.Length);
        }

        /// <summary>This times 10^<paramref name="k"/> (k not negative).</summary>
        public Decimal10 Times10(int k) => new(Units * BigInteger.Pow(10, k), Scale);

        public Decimal10 Plus(Decimal10 other)
        {
            var (a, b, scale) = Align(this, other);
            return new Decimal10(a + b, scale);
        }

        public Decimal10 Negated() => this with { Units = -Units };

        /// <summary>Both as integers over one power of ten, and that power.</summary>
        public static (BigInteger A, BigInteger B, int Scale) Align(Decimal10 a, Decimal10 b)
        {
            int scale = Math.Max(a.Scale, b.Scale);
            return (a.Units * BigInteger.Pow(10, scale - a.Scale), b.Units * BigInteger.Pow(10, scale - b.Scale), scale);
        }

        public int CompareTo(Decimal10 other)
        {
            var (a, b, _) = Align(this, other);
            return a.CompareTo(b);
        }

        public static bool operator <(Decimal10 a, Decimal10 b) => a.CompareTo(b) < 0;
        public static bool operator >(Decimal10 a, Decimal10 b) => a.CompareTo(b) > 0;
        public static bool operator <=(Decimal10 a, Decimal10 b) => a.CompareTo(b) <= 0;
        public static bool operator >=(Decimal10 a, Decimal10 b) => a.CompareTo(b) >= 0;

        /// <summary>Whether this is an integer multiple of <paramref name="step"/> (positive).</summary>
        public bool IsMultipleOf(Decimal10 step)
        {
            var (a, b, _) = Align(this, step);
            return (a % b).IsZero;
        }

        /// <summary>The smallest positive number that is a multiple of both (both positive).</summary>
        public static Decimal10 LeastCommonMultiple(Decimal10 a, Decimal10 b)
        {
            var (x, y, scale) = Align(a, b);
            return new Decimal10(x / BigInteger.GreatestCommonDivisor(x, y) * y, scale);
        }

        /// <summary>The same number with no trailing fraction zeros (the smallest scale that writes it).</summary>
        public Decimal10 Reduced()
        {
            var (units, scale) = (Units, Scale);
            while (scale > 0 && (units % 10).IsZero) (units, scale) = (units / 10, scale - 1);
            return new Decimal10(units, scale);
        }

        /// <summary>The number as JSON text (no exponent).</summary>
        public override string ToString()
        {
            string digits = BigInteger.Abs(Units).ToString(CultureInfo.InvariantCulture).PadLeft(Scale + 1, '0');
            string text = Scale == 0 ? digits : digits[..^Scale] + "." + digits[^Scale..];
            return Units.Sign < 0 ? "-" + text : text;
        }
    }
}
