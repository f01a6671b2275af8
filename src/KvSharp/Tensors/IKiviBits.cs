namespace KvSharp.Tensors;

/// <summary>How many bits a KIVI code takes (<see cref="KvKivi{TBits, TAxis}"/>): 4 (kivi4) or 2 (kivi2).</summary>
public interface IKiviBits
{
    /// <summary>Bits per code: 4 or 2 (a divisor of 8, so codes never straddle bytes).</summary>
    static abstract int Bits { get; }

    /// <summary>The type's name, which is its <c>KvElementType</c>'s ("Kivi4").</summary>
    static abstract string Name { get; }
}

/// <summary>kivi4: 16 levels per group.</summary>
public readonly struct KiviBits4 : IKiviBits
{
    public static int Bits => 4;
    public static string Name => "Kivi4";
}

/// <summary>kivi2: 4 levels per group.</summary>
public readonly struct KiviBits2 : IKiviBits
{
    public static int Bits => 2;
    public static string Name => "Kivi2";
}
