using System.Buffers.Binary;
using System.Text;
using KvSharp.Tensors;

namespace KvSharp.Gguf;

/// <summary>
/// Writes a GGUF v3 file: metadata in insertion order, then tensor infos, then aligned tensor data.
/// What it writes, <see cref="GgufFile"/> reads back unchanged (tests and the synthetic-model benchmark use it).
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _metadata = [];
    private readonly List<(GgufTensorInfo Info, ReadOnlyMemory<byte> Data)> _tensors = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public int Alignment { get; }
    public uint Version { get; }

    public GgufWriter(int alignment = GgufFile.DefaultAlignment, uint version = 3)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "alignment must be a power of two");
        if (version is not (2 or 3)) throw new ArgumentOutOfRangeException(nameof(version), version, "GGUF version must be 2 or 3");
        Alignment = alignment;
        Version = version;
        if (alignment != GgufFile.DefaultAlignment) Add("general.alignment", GgufValue.Of((uint)alignment));
    }

    public GgufWriter Add(string key, GgufValue value)
    {
        if (!_keys.Add(key)) throw new ArgumentException($"metadata key '{key}' was already added", nameof(key));
        _metadata.Add((key, value));
        return this;
    }

    public GgufWriter Add(string key, string value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, uint value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, float value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, bool value) => Add(key, GgufValue.Of(value));

    /// <summary>Adds a tensor; <paramref name="dims"/> in GGML order (ne0 first). The data must be exactly the tensor's size.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, ReadOnlyMemory<byte> data)
    {
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        var info = new GgufTensorInfo(name, type, (long[])dims.Clone(), 0);
        if (info.ByteSize != data.Length)
            throw new ArgumentException($"tensor '{name}' ({type} {info.ShapeText}) needs {info.ByteSize} bytes, got {data.Length}", nameof(data));
        _tensors.Add((info, data));
        return this;
    }

    /// <summary>Adds an F32 tensor from floats.</summary>
    public GgufWriter AddTensor(string name, long[] dims, ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return AddTensor(name, GgmlType.F32, dims, bytes);
    }

    public void Write(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Write(stream);
    }

    public void Write(Stream stream)
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)value.Type);
            WriteValue(w, value.Type, value.Value, key);
        }

        long offset = 0;
        var offsets = new long[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            var (info, data) = _tensors[i];
            offsets[i] = offset;
            WriteString(w, info.Name);
            w.Write((uint)info.Dimensions.Length);
            foreach (long d in info.Dimensions) w.Write((ulong)d);
            w.Write((uint)info.Type);
            w.Write((ulong)offset);
            offset = AlignUp(offset + data.Length);
        }

        Pad(w, stream.Position);
        for (int i = 0; i < _tensors.Count; i++)
        {
            w.Write(_tensors[i].Data.Span);
            if (i + 1 < _tensors.Count) Pad(w, offsets[i] + _tensors[i].Data.Length);
        }
        w.Flush();
    }

    private long AlignUp(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private void Pad(BinaryWriter w, long position)
    {
        long padding = AlignUp(position) - position;
        for (long i = 0; i < padding; i++) w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value, string key)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write(Convert.ToByte(value)); break;
            case GgufValueType.Int8: w.Write(Convert.ToSByte(value)); break;
            case GgufValueType.UInt16: w.Write(Convert.ToUInt16(value)); break;
            case GgufValueType.Int16: w.Write(Convert.ToInt16(value)); break;
            case GgufValueType.UInt32: w.Write(Convert.ToUInt32(value)); break;
            case GgufValueType.Int32: w.Write(Convert.ToInt32(value)); break;
            case GgufValueType.Float32: w.Write(Convert.ToSingle(value)); break;
            case GgufValueType.Bool: w.Write((byte)(Convert.ToBoolean(value) ? 1 : 0)); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write(Convert.ToUInt64(value)); break;
            case GgufValueType.Int64: w.Write(Convert.ToInt64(value)); break;
            case GgufValueType.Float64: w.Write(Convert.ToDouble(value)); break;
            case GgufValueType.Array:
                var array = (GgufArray)value;
                w.Write((uint)array.ElementType);
                w.Write((ulong)array.Length);
                foreach (var item in array.Items) WriteValue(w, array.ElementType, item!, key);
                break;
            default: throw new ArgumentException($"metadata '{key}' has unknown type {type}");
        }
    }
}
