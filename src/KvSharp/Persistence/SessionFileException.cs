namespace KvSharp.Persistence;

/// <summary>A session file that cannot be restored: another model or KV type, a newer version, truncated or corrupted. Nothing was restored.</summary>
public sealed class SessionFileException(string message) : IOException(message);
