using System.Globalization;

namespace KvSharp.Gguf;

/// <summary>
/// One metadata value. Scalars are stored as their natural .NET type (byte, sbyte, ushort, short, uint, int,
/// float, bool, string, ulong, long, double); arrays as <see cref="GgufArray"/>.
/// </summary>
public sealed class GgufValue
{
    public GgufValueType Type { get; }
    public object Value { get; }

    public GgufValue(GgufValueType type, object value)
    {
        Type = type;
        Value = value;
    }

    public static GgufValue Of(string s) => new(GgufValueType.String, s);
    public static GgufValue Of(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue Of(int v) => new(GgufValueType.Int32, v);
    public static GgufValue Of(ulong v) => new(GgufValueType.UInt64, v);
    public static GgufValue Of(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Of(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue Of(string[] v) => new(GgufValueType.Array, new GgufArray(GgufValueType.String, v));
    public static GgufValue Of(float[] v) => new(GgufValueType.Array, new GgufArray(GgufValueType.Float32, v));
    public static GgufValue Of(int[] v) => new(GgufValueType.Array, new GgufArray(GgufValueType.Int32, v));

    public bool IsInteger => Type is GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.UInt16
        or GgufValueType.Int16 or GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.UInt64 or GgufValueType.Int64;

    /// <summary>The value as a 64-bit integer if it is any integer type (or a bool).</summary>
    public bool TryGetInt64(out long value)
    {
        switch (Value)
        {
            case byte b: value = b; return true;
            case sbyte sb: value = sb; return true;
            case ushort us: value = us; return true;
            case short s: value = s; return true;
            case uint ui: value = ui; return true;
            case int i: value = i; return true;
            case long l: value = l; return true;
            case ulong ul when ul <= long.MaxValue: value = (long)ul; return true;
            case bool bo: value = bo ? 1 : 0; return true;
            default: value = 0; return false;
        }
    }

    /// <summary>The value as a double if it is any number.</summary>
    public bool TryGetDouble(out double value)
    {
        switch (Value)
        {
            case float f: value = f; return true;
            case double d: value = d; return true;
            default:
                bool ok = TryGetInt64(out long l);
                value = l;
                return ok;
        }
    }

    /// <summary>The value for display in messages: strings escaped and shortened (<see cref="PrintableText"/>); <see cref="Value"/> holds the string itself.</summary>
    public override string ToString() => Value switch
    {
        string s => PrintableText.Of(s),
        GgufArray a => a.ToString(),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => Convert.ToString(Value, CultureInfo.InvariantCulture) ?? "",
    };
}

/// <summary>A typed metadata array. <see cref="Items"/> is a .NET array of the element type (string[], float[], int[], ...).</summary>
public sealed class GgufArray
{
    public GgufValueType ElementType { get; }
    public Array Items { get; }
    public int Length => Items.Length;

    public GgufArray(GgufValueType elementType, Array items)
    {
        ElementType = elementType;
        Items = items;
    }

    public override string ToString() => $"[{ElementType} x {Items.Length}]";
}
