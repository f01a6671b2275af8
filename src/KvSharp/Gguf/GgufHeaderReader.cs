using System.Buffers.Binary;
using System.Text;

namespace KvSharp.Gguf;

/// <summary>
/// A forward-only reader over the header bytes of a GGUF file. Every read is bounds-checked so a truncated or
/// corrupted file produces a <see cref="GgufFormatException"/> that says what was being read and where,
/// never an IndexOutOfRangeException or an attempt to allocate a huge array.
/// </summary>
internal ref struct GgufHeaderReader
{
    private readonly ReadOnlySpan<byte> _bytes;
    private readonly string _file;
    private long _fileLength;

    public int Position { get; private set; }

    public GgufHeaderReader(ReadOnlySpan<byte> bytes, string file, long fileLength)
    {
        _bytes = bytes;
        _file = file;
        _fileLength = fileLength;
        Position = 0;
    }

    public GgufFormatException Error(string what) =>
        new($"{_file}: {what} (at byte offset {Position})");

    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (count < 0 || Position + (long)count > _bytes.Length)
        {
            string where = Position + (long)count > _fileLength ? "file is truncated" : "header too large";
            throw Error($"{where} while reading {what}: need {count} bytes, {_bytes.Length - Position} remain");
        }
        var span = _bytes.Slice(Position, count);
        Position += count;
        return span;
    }

    public byte ReadUInt8(string what) => Take(1, what)[0];
    public sbyte ReadInt8(string what) => (sbyte)Take(1, what)[0];
    public ushort ReadUInt16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));
    public short ReadInt16(string what) => BinaryPrimitives.ReadInt16LittleEndian(Take(2, what));
    public uint ReadUInt32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public int ReadInt32(string what) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, what));
    public ulong ReadUInt64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));
    public long ReadInt64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));
    public float ReadFloat32(string what) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, what));
    public double ReadFloat64(string what) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, what));

    public bool ReadBool(string what)
    {
        byte b = ReadUInt8(what);
        if (b > 1) throw Error($"{what}: bool value {b} is neither 0 nor 1");
        return b == 1;
    }

    public string ReadString(string what)
    {
        ulong length = ReadUInt64(what + " (string length)");
        if (length > (ulong)(_bytes.Length - Position))
            throw Error($"{what}: string length {length} exceeds the {_bytes.Length - Position} bytes left in the file (truncated or corrupt)");
        var raw = Take((int)length, what);
        try
        {
            return StrictUtf8.GetString(raw);
        }
        catch (DecoderFallbackException)
        {
            // Some converters wrote token texts that are not valid UTF-8 on their own; such a token is unusable
            // as text anyway, so decode it leniently rather than reject the whole model.
            return Encoding.UTF8.GetString(raw);
        }
    }

    /// <summary>Checks that <paramref name="count"/> elements of at least <paramref name="minBytes"/> each can fit in what is left.</summary>
    public void CheckCount(ulong count, int minBytes, string what)
    {
        ulong left = (ulong)(_bytes.Length - Position);
        if (count > left / (ulong)Math.Max(1, minBytes))
            throw Error($"{what}: count {count} cannot fit in the {left} bytes left in the file (truncated or corrupt)");
    }

    private static readonly UTF8Encoding StrictUtf8 = new(false, true);
}
