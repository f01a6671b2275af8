namespace KvSharp.Cache.Tiers;

/// <summary>
/// Prefix blocks in a directory, one file per block, within a byte budget: the least recently used files are deleted
/// when a write would exceed it. A write goes to a temporary file that is then renamed over the block's name, so a
/// crash leaves either the old file, the new one, or a stray temporary file (deleted at the next start), never half a
/// block under a block's name; and every value carries its checksum (<see cref="KvTierBlock"/>) anyway. Files found at
/// start are adopted, oldest first out. Several processes should not share one directory: each keeps its own budget.
/// </summary>
public sealed class DiskKvTier : IKvBlockTier
{
    private const string Extension = ".kvblock";
    private readonly object _lock = new();
    // Files by name (less the extension), least recently used first.
    private readonly LinkedList<(string Stem, long Bytes)> _lru = new();
    private readonly Dictionary<string, LinkedListNode<(string Stem, long Bytes)>> _files = [];
    private long _bytes;

    public DiskKvTier(string directory, long budgetBytes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (budgetBytes <= 0) throw new ArgumentOutOfRangeException(nameof(budgetBytes), budgetBytes, "the disk tier's byte budget must be positive");
        Directory = System.IO.Directory.CreateDirectory(directory).FullName;
        BudgetBytes = budgetBytes;
        foreach (var stray in System.IO.Directory.EnumerateFiles(Directory, "*.tmp-*")) TryDelete(stray);
        foreach (var file in new DirectoryInfo(Directory).EnumerateFiles("*" + Extension).OrderBy(f => f.LastWriteTimeUtc))
            Add(Path.GetFileNameWithoutExtension(file.Name), file.Length);
        Trim(0);
    }

    public string Name => "disk";
    public string Directory { get; }
    public long BudgetBytes { get; }
    /// <summary>Bytes of the block files held now.</summary>
    public long UsedBytes { get { lock (_lock) return _bytes; } }
    public int Count { get { lock (_lock) return _files.Count; } }

    /// <summary>The file holding <paramref name="key"/>'s value.</summary>
    public string PathOf(string key) => FileOf(Stem(key));

    /// <summary>A key as a file name: keys are words and colons (<see cref="KvTierBlock.Key"/>); a colon becomes '-'.</summary>
    private static string Stem(string key)
    {
        foreach (char c in key)
            if (!(char.IsAsciiLetterOrDigit(c) || c == ':' || c == '-'))
                throw new ArgumentException($"disk tier key '{key}' holds '{c}': only letters, digits, ':' and '-' are allowed", nameof(key));
        return key.Replace(':', '-');
    }

    private string FileOf(string stem) => Path.Combine(Directory, stem + Extension);

    public async ValueTask PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellation)
    {
        if (value.Length > BudgetBytes) return; // could never be kept
        string stem = Stem(key), path = FileOf(stem), temporary = $"{path}.tmp-{Guid.NewGuid():N}";
        try
        {
            await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                await file.WriteAsync(value, cancellation).ConfigureAwait(false);
            lock (_lock)
            {
                Trim(value.Length);
                File.Move(temporary, path, overwrite: true);
                Remove(stem);
                Add(stem, value.Length);
            }
        }
        finally
        {
            TryDelete(temporary);
        }
    }

    public async ValueTask<byte[]?> GetAsync(string key, CancellationToken cancellation)
    {
        string stem = Stem(key), path = FileOf(stem);
        lock (_lock)
        {
            if (!_files.TryGetValue(stem, out var node)) return null;
            _lru.Remove(node);
            _lru.AddLast(node);
        }
        try
        {
            return await File.ReadAllBytesAsync(path, cancellation).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            // Deleted behind our back (or by a concurrent trim): forget it.
            lock (_lock) Remove(stem);
            return null;
        }
    }

    /// <summary>Deletes the least recently used files until <paramref name="incoming"/> more bytes fit in the budget.</summary>
    private void Trim(long incoming)
    {
        while (_bytes + incoming > BudgetBytes && _lru.First is { } oldest)
        {
            Remove(oldest.Value.Stem);
            TryDelete(FileOf(oldest.Value.Stem));
        }
    }

    private void Add(string stem, long bytes)
    {
        _files[stem] = _lru.AddLast((stem, bytes));
        _bytes += bytes;
    }

    private void Remove(string stem)
    {
        if (!_files.Remove(stem, out var node)) return;
        _lru.Remove(node);
        _bytes -= node.Value.Bytes;
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public void Dispose() { }
}
