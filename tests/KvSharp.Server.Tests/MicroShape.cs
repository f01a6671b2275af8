using KvSharp.Synthetic;

namespace KvSharp.Server.Tests;

/// <summary>The synthetic shape these tests build models of: GQA 4/2, 64 wide, 2 layers, so writing and running take milliseconds.</summary>
public static class MicroShape
{
    /// <summary>With the built-in 300-token vocabulary (a copied vocabulary replaces the size); context 1024 unless the writer says otherwise.</summary>
    public static readonly SyntheticShape Shape = new("micro", "test shape", 64, 2, 4, 2, 128, 300, 1024);
}
