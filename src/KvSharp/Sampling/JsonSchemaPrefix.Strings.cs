using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KvSharp.Sampling;

public sealed partial class JsonSchemaPrefix
{
    /// <summary>
    /// What a free string must be: <c>minLength</c> and <c>maxLength</c> (in code points), a <c>pattern</c>
    /// (<see cref="PatternPrefix"/>), a <c>format</c>. The formats .NET types produce are enforced as patterns (date,
    /// time, date-time, uuid) with the day checked against its month, and so are email, uri and ipv4 loosely; other
    /// formats are annotations, as JSON Schema 2020-12 defines <c>format</c> by default. A string written so far is
    /// allowed where some continuation meets them all: a character not yet whole (a UTF-8 sequence or an escape cut
    /// off) is any of the code points it can still become.
    /// </summary>
    internal sealed class StringRules(int minLength, int? maxLength, PatternPrefix? pattern, bool calendar)
    {
        // Years 0001 to 9999, as .NET's dates have them.
        private const string Date = @"([1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])";
        private const string Time = @"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,7})?";
        private const string Octet = @"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)";

        private static readonly Dictionary<string, string> Formats = new(StringComparer.Ordinal)
        {
            ["date"] = $"^{Date}$",
            // System.Text.Json's TimeOnly: hours to seconds and up to seven fraction digits, no offset.
            ["time"] = $"^{Time}$",
            ["date-time"] = $"^{Date}T{Time}(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$",
            ["uuid"] = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            ["email"] = @"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$",
            ["uri"] = @"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$",
            ["ipv4"] = $"^({Octet}\\.){{3}}{Octet}$",
        };

        public static StringRules? Of(JsonElement s, string path)
        {
            int min = Count(s, "minLength", path) ?? 0;
            int? max = Count(s, "maxLength", path);
            if (max < min) throw new ArgumentException($"{path}: maxLength {max} is below minLength {min}");
            string? format = s.TryGetProperty("format", out var f) ? f.ValueKind == JsonValueKind.String ? f.GetString() : throw new ArgumentException($"{path}.format must be a string") : null;
            if (s.TryGetProperty("pattern", out var p) && format != null && Formats.ContainsKey(format))
                throw new ArgumentException($"{path}: pattern beside format '{format}' is not supported in a constrained reply");
            PatternPrefix? pattern = null;
            if (s.TryGetProperty("pattern", out p))
                pattern = p.ValueKind == JsonValueKind.String ? PatternPrefix.Parse(p.GetString()!, path + ".pattern") : throw new ArgumentException($"{path}.pattern must be a string");
            else if (format != null && Formats.TryGetValue(format, out string? formatPattern))
                pattern = PatternPrefix.Parse(formatPattern, $"{path}.format");
            if (min == 0 && max == null && pattern == null) return null;
            return new StringRules(min, max, pattern, format is "date" or "date-time");
        }

        /// <summary>Whether a whole string meets the rules.</summary>
        public bool Allows(string value)
        {
            int length = value.EnumerateRunes().Count();
            return length >= minLength && !(length > maxLength) && (pattern == null || pattern.Matches(value)) && (!calendar || DayFits(value));
        }

        /// <summary>
        /// Whether a string so far (its bytes, escapes resolved; <paramref name="escape"/>: an escape cut off after them,
        /// from its backslash) can still become one that meets the rules.
        /// </summary>
        public bool AllowsStart(byte[] bytes, string escape)
        {
            var text = new StringBuilder();
            int length = 0, at = 0;
            while (at < bytes.Length)
            {
                var status = Rune.DecodeFromUtf8(bytes.AsSpan(at), out var rune, out int used);
                if (status == OperationStatus.NeedMoreData) break;
                if (status != OperationStatus.Done) return false;
                text.Append(rune.ToString());
                length++;
                at += used;
            }
            // A UTF-8 sequence cut off by an escape is no character at all.
            if (at < bytes.Length && escape.Length > 0) return false;
            // The character not yet whole: the code points the rest of its UTF-8 sequence, or its escape, can make.
            (int First, int Last)? pending = at < bytes.Length ? Utf8Range(bytes.AsSpan(at)) : escape.Length > 0 ? EscapeRange(escape) : null;
            if (pending != null) length++;
            if (length > maxLength) return false;
            string soFar = text.ToString();
            if (pattern != null && !(pending is var (first, last) ? pattern.ViableWithAnyOf(soFar, first, last) : pattern.Viable(soFar))) return false;
            return !calendar || pending != null || DayFits(soFar);
        }

        /// <summary>
        /// The code points a UTF-8 sequence cut off after <paramref name="start"/> can still become (at least the
        /// smallest its length encodes: a shorter one would be an overlong form, which UTF-8 forbids).
        /// </summary>
        private static (int, int) Utf8Range(ReadOnlySpan<byte> start)
        {
            int total = start[0] >= 0xF0 ? 4 : start[0] >= 0xE0 ? 3 : 2;
            int lead = start[0] & (0x7F >> total);
            int first = lead, last = lead;
            for (int i = 1; i < total; i++)
            {
                int bits = i < start.Length ? start[i] & 0x3F : -1;
                first = (first << 6) | (bits < 0 ? 0 : bits);
                last = (last << 6) | (bits < 0 ? 0x3F : bits);
            }
            return (Math.Max(first, total == 2 ? 0x80 : total == 3 ? 0x800 : 0x10000), Math.Min(last, 0x10FFFF));
        }

        /// <summary>Whether a date's day (as far as it is written) can be a day of its month: no February 30th.</summary>
        private static bool DayFits(string text)
        {
            if (text.Length < 9) return true;
            int year = int.Parse(text.AsSpan(0, 4), CultureInfo.InvariantCulture), month = int.Parse(text.AsSpan(5, 2), CultureInfo.InvariantCulture);
            int days = month == 2 ? (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28) : month is 4 or 6 or 9 or 11 ? 30 : 31;
            string day = text.Substring(8, Math.Min(2, text.Length - 8));
            for (int d = 1; d <= days; d++)
                if (d.ToString("00", CultureInfo.InvariantCulture).StartsWith(day, StringComparison.Ordinal)) return true;
            return false;
        }
    }
}
