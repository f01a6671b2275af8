using KvSharp.Tensors;

namespace KvSharp.Gguf;

/// <summary>
/// A GGUF model file (v2 or v3), memory-mapped. The header (metadata and tensor infos) is parsed on open;
/// tensor data stays in the mapping and is handed out as pointers/spans without copying.
/// Dispose releases the mapping: pointers obtained from it are invalid afterwards.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;

    private readonly MappedFile _file;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    public string Path { get; }
    public uint Version { get; }
    public long FileLength { get; }
    public int Alignment { get; }
    /// <summary>Absolute file offset of the tensor data section.</summary>
    public long DataOffset { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> MetadataKeys { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    private GgufFile(MappedFile file)
    {
        _file = file;
        Path = file.Path;
        FileLength = file.Length;
        var header = ParseHeader(file.Head, Path, FileLength);
        Version = header.Version;
        Metadata = header.Metadata;
        MetadataKeys = header.Keys;
        Tensors = header.Tensors;
        Alignment = header.Alignment;
        DataOffset = header.DataOffset;
        _tensorsByName = header.Tensors.ToDictionary(t => t.Name);
    }

    /// <summary>Opens and validates a GGUF file. Throws <see cref="GgufFormatException"/> naming what is wrong.</summary>
    public static GgufFile Open(string path)
    {
        var file = new MappedFile(path, 24, "GGUF");
        try
        {
            return new GgufFile(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool HasTensor(string name) => _tensorsByName.ContainsKey(name);

    public GgufTensorInfo? FindTensor(string name) => _tensorsByName.GetValueOrDefault(name);

    public GgufTensorInfo GetTensor(string name) => _tensorsByName.TryGetValue(name, out var t)
        ? t
        : throw new GgufFormatException($"{Path}: tensor '{name}' is missing");

    /// <summary>Lets the OS drop mapped pages of a range this process has copied elsewhere (see <see cref="MappedFile.AdviseNotNeeded"/>).</summary>
    public void AdviseNotNeeded(byte* start, long bytes) => _file.AdviseNotNeeded(start, bytes);

    /// <summary>Pointer to a tensor's data inside the mapping (valid until Dispose).</summary>
    public byte* GetTensorPointer(GgufTensorInfo tensor)
    {
        return _file.Pointer + DataOffset + tensor.Offset;
    }

    /// <summary>A tensor's bytes as a span (tensors over 2 GiB must use <see cref="GetTensorPointer"/>).</summary>
    public ReadOnlySpan<byte> GetTensorBytes(GgufTensorInfo tensor)
    {
        long size = tensor.ByteSize;
        if (size > int.MaxValue) throw new NotSupportedException($"tensor {tensor.Name} is {size} bytes; use GetTensorPointer");
        return new ReadOnlySpan<byte>(GetTensorPointer(tensor), (int)size);
    }

    // ---- typed metadata access: errors name the key and what was found ----

    public bool TryGet(string key, out GgufValue value) => Metadata.TryGetValue(key, out value!);

    public bool TryGetString(string key, out string value)
    {
        if (Metadata.TryGetValue(key, out var v) && v.Value is string s) { value = s; return true; }
        if (v != null) throw WrongType(key, v, "string");
        value = "";
        return false;
    }

    public string? GetStringOrNull(string key) => TryGetString(key, out var s) ? s : null;

    public bool TryGetInt64(string key, out long value)
    {
        value = 0;
        if (!Metadata.TryGetValue(key, out var v)) return false;
        // Strict: a bool (or a float) where a count belongs is a damaged type byte, not a 1.
        if (!v.IsInteger) throw WrongType(key, v, "an integer");
        if (!v.TryGetInt64(out value))
            throw new GgufFormatException($"{Path}: metadata '{key}' = {v} is out of range for a 64-bit integer");
        return true;
    }

    public bool TryGetUInt32(string key, out uint value)
    {
        value = 0;
        if (!TryGetInt64(key, out long l)) return false;
        if (l < 0 || l > uint.MaxValue)
            throw new GgufFormatException($"{Path}: metadata '{key}' = {l} is out of range for a 32-bit unsigned integer");
        value = (uint)l;
        return true;
    }

    public bool TryGetFloat(string key, out float value)
    {
        value = 0;
        if (!Metadata.TryGetValue(key, out var v)) return false;
        value = v.Value switch
        {
            float f => f,
            double d => (float)d,
            _ => throw WrongType(key, v, "a float"),
        };
        return true;
    }

    public bool TryGetBool(string key, out bool value)
    {
        value = false;
        if (!Metadata.TryGetValue(key, out var v)) return false;
        if (v.Value is bool b) { value = b; return true; }
        if (v.TryGetInt64(out long l) && l is 0 or 1) { value = l == 1; return true; }
        throw WrongType(key, v, "bool");
    }

    public GgufArray? GetArrayOrNull(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) return null;
        return v.Value as GgufArray ?? throw WrongType(key, v, "array");
    }

    public string[]? GetStringArray(string key)
    {
        var a = GetArrayOrNull(key);
        if (a == null) return null;
        return a.Items as string[] ?? throw WrongElementType(key, a, "strings");
    }

    public float[]? GetFloatArray(string key)
    {
        var a = GetArrayOrNull(key);
        if (a == null) return null;
        return a.Items switch
        {
            float[] f => f,
            double[] d => Array.ConvertAll(d, x => (float)x),
            _ => throw WrongElementType(key, a, "floats"),
        };
    }

    public int[]? GetInt32Array(string key)
    {
        var a = GetArrayOrNull(key);
        if (a == null) return null;
        var result = new int[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            var item = a.Items.GetValue(i);
            long l = item switch
            {
                byte b => b, sbyte sb => sb, ushort us => us, short s => s, uint ui => ui, int n => n, long ll => ll,
                ulong ul when ul <= long.MaxValue => (long)ul,
                _ => throw WrongElementType(key, a, "integers"),
            };
            if (l < int.MinValue || l > int.MaxValue)
                throw new GgufFormatException($"{Path}: metadata '{key}'[{i}] = {l} is out of range for a 32-bit integer");
            result[i] = (int)l;
        }
        return result;
    }

    private GgufFormatException WrongType(string key, GgufValue v, string expected) =>
        new($"{Path}: metadata '{PrintableText.Of(key)}' has type {Describe(v)}, expected {expected}");

    private GgufFormatException WrongElementType(string key, GgufArray a, string expected) =>
        new($"{Path}: metadata '{PrintableText.Of(key)}' is an array of {a.ElementType}, expected {expected}");

    private static string Describe(GgufValue v) => v.Value is GgufArray a ? $"array of {a.ElementType}" : v.Type.ToString();

    public void Dispose() => _file.Dispose();

    // ---- header parsing ----

    private sealed record Header(uint Version, Dictionary<string, GgufValue> Metadata, List<string> Keys,
        List<GgufTensorInfo> Tensors, int Alignment, long DataOffset);

    private static Header ParseHeader(ReadOnlySpan<byte> bytes, string path, long fileLength)
    {
        var r = new GgufHeaderReader(bytes, path, fileLength);
        uint magic = r.ReadUInt32("magic");
        if (magic != Magic)
            throw new GgufFormatException($"{path}: not a GGUF file: magic is 0x{magic:X8}, expected 0x{Magic:X8} (\"GGUF\")");
        uint version = r.ReadUInt32("version");
        if (version is not (2 or 3))
            throw new GgufFormatException($"{path}: GGUF version {version} is not supported (only versions 2 and 3)");
        ulong tensorCount = r.ReadUInt64("tensor count");
        ulong kvCount = r.ReadUInt64("metadata count");
        // Smallest possible metadata entry: 8-byte key length + 4-byte type + 1-byte value; tensor info: 8+4+8+4+8.
        r.CheckCount(kvCount, 13, "metadata count");
        r.CheckCount(tensorCount, 32, "tensor count");

        var metadata = new Dictionary<string, GgufValue>((int)kvCount, StringComparer.Ordinal);
        var keys = new List<string>((int)kvCount);
        for (ulong i = 0; i < kvCount; i++)
        {
            string key = r.ReadString($"metadata key #{i}");
            string shown = PrintableText.Of(key);
            var type = (GgufValueType)r.ReadUInt32($"type of metadata '{shown}'");
            var value = ReadValue(ref r, type, shown);
            if (!metadata.TryAdd(key, value))
                throw r.Error($"metadata key '{shown}' appears twice");
            keys.Add(key);
        }

        int alignment = DefaultAlignment;
        if (metadata.TryGetValue("general.alignment", out var alignValue))
        {
            if (!alignValue.IsInteger || !alignValue.TryGetInt64(out long a) || a <= 0 || a > 1 << 20 || (a & (a - 1)) != 0)
                throw new GgufFormatException(
                    $"{path}: general.alignment = {alignValue} ({alignValue.Type}) must be an integer power of two between 1 and 1 MiB");
            alignment = (int)a;
        }

        var tensors = new List<GgufTensorInfo>((int)tensorCount);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            string fullName = r.ReadString($"name of tensor #{i}");
            string name = PrintableText.Of(fullName);
            uint nDims = r.ReadUInt32($"dimension count of tensor '{name}'");
            if (nDims is 0 or > 4)
                throw r.Error($"tensor '{name}' has {nDims} dimensions; GGUF allows 1 to 4");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong ne = r.ReadUInt64($"dimension {d} of tensor '{name}'");
                if (ne == 0 || ne > long.MaxValue / (ulong)elements)
                    throw r.Error($"tensor '{name}' dimension {d} = {ne} is invalid (zero or overflowing)");
                dims[d] = (long)ne;
                elements *= (long)ne;
            }
            uint typeNumber = r.ReadUInt32($"type of tensor '{name}'");
            var type = (GgmlType)typeNumber;
            if (!GgmlTypes.IsKnown(type))
                throw r.Error($"tensor '{name}' has unknown type number {typeNumber}");
            if (dims[0] % GgmlTypes.BlockSize(type) != 0)
                throw r.Error($"tensor '{name}' of type {type} has ne0 = {dims[0]}, not a multiple of its block size {GgmlTypes.BlockSize(type)}");
            // Every block takes at least a byte, so more blocks than the file has bytes cannot be there (and sizes
            // computed from the shape below cannot overflow).
            if (elements / GgmlTypes.BlockSize(type) > fileLength)
                throw r.Error($"tensor '{name}' ({type} {GgufTensorInfo.FormatShape(dims)}) has {elements} elements, more than the {fileLength}-byte file can hold");
            ulong offset = r.ReadUInt64($"data offset of tensor '{name}'");
            if (offset % (ulong)alignment != 0)
                throw r.Error($"tensor '{name}' data offset {offset} is not a multiple of the alignment {alignment}");
            if (offset > (ulong)fileLength)
                throw r.Error($"tensor '{name}' data offset {offset} is past the end of the {fileLength}-byte file (truncated or corrupt)");
            if (!names.Add(fullName))
                throw r.Error($"tensor name '{name}' appears twice");
            tensors.Add(new GgufTensorInfo(fullName, type, dims, (long)offset));
        }

        long dataOffset = (r.Position + (long)alignment - 1) / alignment * alignment;
        if (tensorCount > 0 && dataOffset > fileLength)
            throw new GgufFormatException($"{path}: file is truncated: tensor data would start at {dataOffset} but the file has {fileLength} bytes");
        CheckDataRegions(tensors, dataOffset, fileLength, path);
        return new Header(version, metadata, keys, tensors, alignment, dataOffset);
    }

    /// <summary>
    /// Every tensor's bytes lie inside the file and no two tensors share a byte: a damaged type or offset that makes
    /// one tensor read another's data would otherwise run with silently wrong weights.
    /// </summary>
    private static void CheckDataRegions(List<GgufTensorInfo> tensors, long dataOffset, long fileLength, string path)
    {
        var byOffset = tensors.OrderBy(t => t.Offset).ToArray();
        for (int i = 0; i < byOffset.Length; i++)
        {
            var t = byOffset[i];
            long end = dataOffset + t.Offset + t.ByteSize;
            if (end > fileLength)
                throw new GgufFormatException(
                    $"{path}: file is truncated: tensor '{PrintableText.Of(t.Name)}' ({t.Type} {t.ShapeText}, {t.ByteSize} bytes at data offset {t.Offset}) ends at byte {end}, past the end of the {fileLength}-byte file");
            if (i + 1 < byOffset.Length && t.Offset + t.ByteSize > byOffset[i + 1].Offset)
                throw new GgufFormatException(
                    $"{path}: tensor '{PrintableText.Of(t.Name)}' ({t.Type} {t.ShapeText}, {t.ByteSize} bytes at data offset {t.Offset}) overlaps " +
                    $"tensor '{PrintableText.Of(byOffset[i + 1].Name)}' at data offset {byOffset[i + 1].Offset}");
        }
    }

    private static GgufValue ReadValue(ref GgufHeaderReader r, GgufValueType type, string key) => type switch
    {
        GgufValueType.UInt8 => new(type, r.ReadUInt8(key)),
        GgufValueType.Int8 => new(type, r.ReadInt8(key)),
        GgufValueType.UInt16 => new(type, r.ReadUInt16(key)),
        GgufValueType.Int16 => new(type, r.ReadInt16(key)),
        GgufValueType.UInt32 => new(type, r.ReadUInt32(key)),
        GgufValueType.Int32 => new(type, r.ReadInt32(key)),
        GgufValueType.Float32 => new(type, r.ReadFloat32(key)),
        GgufValueType.Bool => new(type, r.ReadBool(key)),
        GgufValueType.String => new(type, r.ReadString(key)),
        GgufValueType.UInt64 => new(type, r.ReadUInt64(key)),
        GgufValueType.Int64 => new(type, r.ReadInt64(key)),
        GgufValueType.Float64 => new(type, r.ReadFloat64(key)),
        GgufValueType.Array => new(type, ReadArray(ref r, key)),
        _ => throw r.Error($"metadata '{key}' has unknown value type {(uint)type}"),
    };

    private static GgufArray ReadArray(ref GgufHeaderReader r, string key)
    {
        var elementType = (GgufValueType)r.ReadUInt32($"element type of array '{key}'");
        ulong count = r.ReadUInt64($"length of array '{key}'");
        int elementBytes = elementType switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
            GgufValueType.String => 8,
            GgufValueType.Array => throw r.Error($"array '{key}' contains nested arrays, which are not supported"),
            _ => throw r.Error($"array '{key}' has unknown element type {(uint)elementType}"),
        };
        r.CheckCount(count, elementBytes, $"length of array '{key}'");
        int n = (int)count;
        string what = $"element of array '{key}'";
        switch (elementType)
        {
            case GgufValueType.String:
            {
                var a = new string[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadString(what);
                return new(elementType, a);
            }
            case GgufValueType.Float32:
            {
                var a = new float[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadFloat32(what);
                return new(elementType, a);
            }
            case GgufValueType.Int32:
            {
                var a = new int[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadInt32(what);
                return new(elementType, a);
            }
            case GgufValueType.UInt32:
            {
                var a = new uint[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadUInt32(what);
                return new(elementType, a);
            }
            case GgufValueType.UInt8:
            {
                var a = new byte[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadUInt8(what);
                return new(elementType, a);
            }
            case GgufValueType.Int8:
            {
                var a = new sbyte[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadInt8(what);
                return new(elementType, a);
            }
            case GgufValueType.Bool:
            {
                var a = new bool[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadBool(what);
                return new(elementType, a);
            }
            case GgufValueType.UInt16:
            {
                var a = new ushort[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadUInt16(what);
                return new(elementType, a);
            }
            case GgufValueType.Int16:
            {
                var a = new short[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadInt16(what);
                return new(elementType, a);
            }
            case GgufValueType.UInt64:
            {
                var a = new ulong[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadUInt64(what);
                return new(elementType, a);
            }
            case GgufValueType.Int64:
            {
                var a = new long[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadInt64(what);
                return new(elementType, a);
            }
            default: // Float64
            {
                var a = new double[n];
                for (int i = 0; i < n; i++) a[i] = r.ReadFloat64(what);
                return new(elementType, a);
            }
        }
    }
}
