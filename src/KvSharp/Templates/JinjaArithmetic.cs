namespace KvSharp.Templates;

/// <summary>+ - * / // % ** with Python's rules: ints stay ints (floor division and modulo), / is always a float,
/// + also joins strings and lists, * repeats them.</summary>
internal static class JinjaArithmetic
{
    public static object? Apply(string op, object? left, object? right)
    {
        if (op == "+")
        {
            switch (left, right)
            {
                case (MarkedString a, MarkedString b): return MarkedString.Add(a, b);
                case (List<object?> a, List<object?> b): return a.Concat(b).ToList();
            }
        }
        if (op == "*")
        {
            switch (left, right)
            {
                case (MarkedString s, long n): return Repeat(s, n);
                case (long n, MarkedString s): return Repeat(s, n);
                case (List<object?> l, long n): return Enumerable.Repeat(l, (int)Math.Max(0, n)).SelectMany(x => x).ToList();
            }
        }
        if (!JinjaValues.IsNumber(left) || !JinjaValues.IsNumber(right))
            throw new JinjaError($"unsupported operand types for {op}: {JinjaValues.TypeName(left)} and {JinjaValues.TypeName(right)}");
        if (left is double || right is double || op == "/")
        {
            double a = JinjaValues.ToDouble(left), b = JinjaValues.ToDouble(right);
            if (b == 0 && op is "/" or "//" or "%") throw new JinjaError("division by zero");
            return op switch
            {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "/" => a / b,
                "//" => Math.Floor(a / b),
                "%" => a - b * Math.Floor(a / b),
                "**" => Math.Pow(a, b),
                _ => throw new JinjaError($"unknown operator {op}"),
            };
        }
        long x = (long)JinjaValues.ToDouble(left), y = (long)JinjaValues.ToDouble(right);
        if (y == 0 && op is "//" or "%") throw new JinjaError("division by zero");
        return op switch
        {
            "+" => x + y,
            "-" => x - y,
            "*" => x * y,
            "//" => FloorDiv(x, y),
            "%" => x - y * FloorDiv(x, y),
            "**" => y >= 0 ? (object)(long)Math.Pow(x, y) : Math.Pow(x, y),
            _ => throw new JinjaError($"unknown operator {op}"),
        };
    }

    private static long FloorDiv(long x, long y)
    {
        long q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static MarkedString Repeat(MarkedString s, long n)
    {
        if (n * s.Length > 1 << 24) throw new JinjaError($"string repetition of {n} is too large");
        var b = new MarkedStringBuilder();
        for (long i = 0; i < n; i++) b.Append(s);
        return b.ToMarked();
    }
}
