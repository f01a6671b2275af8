using System.Globalization;
using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// The slabs interleaved weights live in (<see cref="HugePageSlabs"/>): every allocation is its own 64-byte-aligned
/// bytes whatever else shares its slab, a large one gets a 2 MiB-aligned slab of its own, a slab goes with its last
/// allocation, and on Linux with transparent huge pages enabled a slab is eligible for them.
/// </summary>
public unsafe class HugePageSlabsTests
{
    [Fact]
    public void SmallAllocationsAreAlignedAndKeepTheirOwnBytes()
    {
        int[] sizes = [1, 100, 4096, 70_000, 64, 3];
        var blocks = new (nint P, HugePageSlabs.Slab Slab, int Size)[sizes.Length];
        for (int i = 0; i < sizes.Length; i++)
        {
            byte* p = HugePageSlabs.Allocate(sizes[i], out var slab);
            Assert.Equal(0, (long)p % 64);
            new Span<byte>(p, sizes[i]).Fill((byte)(i + 1));
            blocks[i] = ((nint)p, slab, sizes[i]);
        }
        HugePageSlabs.Free(blocks[1].Slab); // freeing one leaves the others' bytes alone
        for (int i = 0; i < sizes.Length; i++)
        {
            if (i == 1) continue;
            Assert.True(new ReadOnlySpan<byte>((byte*)blocks[i].P, blocks[i].Size).IndexOfAnyExcept((byte)(i + 1)) < 0, $"allocation {i} was overwritten");
        }
        for (int i = 0; i < sizes.Length; i++)
            if (i != 1) HugePageSlabs.Free(blocks[i].Slab);
    }

    [Fact]
    public void LargeAllocationGetsItsOwnSlabFreedWithIt()
    {
        long bytes = HugePageSlabs.SlabBytes / 2 + 1;
        byte* p = HugePageSlabs.Allocate(bytes, out var slab);
        Assert.Equal(0, (long)p % HugePageMemory.PageBytes);
        Assert.Equal(1, slab.Live);
        Assert.True(slab.Size >= bytes && slab.Size % HugePageMemory.PageBytes == 0, $"slab of {slab.Size} bytes for {bytes}");
        p[0] = 1;
        p[bytes - 1] = 2;
        HugePageSlabs.Free(slab);
        Assert.True(slab.Base == null, "the slab was not freed with its only allocation");
    }

    [Fact]
    public void InterleavedCopiesLiveInSlabsAndDisposeTwiceSafely()
    {
        using var w = new NativeWeights(GgmlType.Q8_0, 16, 64, seed: 3);
        var rows = InterleavedRows.Create(w.Matrix);
        Assert.Equal(0, (long)rows.Data % 64);
        rows.Dispose();
        rows.Dispose();
        Assert.Throws<ObjectDisposedException>(() => (nint)rows.Data);
    }

    [Fact]
    public void SlabsAreEligibleForTransparentHugePagesOnLinux()
    {
        const string enabled = "/sys/kernel/mm/transparent_hugepage/enabled";
        Assert.SkipUnless(OperatingSystem.IsLinux() && File.Exists(enabled) && !File.ReadAllText(enabled).Contains("[never]"),
            "transparent huge pages are off or this is not Linux");
        byte* p = HugePageSlabs.Allocate(HugePageSlabs.SlabBytes, out var slab);
        try
        {
            new Span<byte>(p, (int)HugePageMemory.PageBytes).Fill(1);
            string? eligible = SmapsField((nint)p, "THPeligible:");
            Assert.SkipWhen(eligible == null, "this kernel's smaps reports no THPeligible");
            Assert.Equal("1", eligible);
        }
        finally
        {
            HugePageSlabs.Free(slab);
        }
    }

    [Fact]
    public void HugePageMemoryIsWholeAlignedPages()
    {
        Assert.Equal(HugePageMemory.PageBytes, HugePageMemory.RoundUp(1));
        Assert.Equal(HugePageMemory.PageBytes, HugePageMemory.RoundUp(HugePageMemory.PageBytes));
        Assert.Equal(2 * HugePageMemory.PageBytes, HugePageMemory.RoundUp(HugePageMemory.PageBytes + 1));
        byte* p = HugePageMemory.Allocate(3 << 20);
        try
        {
            Assert.Equal(0, (long)p % HugePageMemory.PageBytes);
            // The rounding is usable memory: the last byte of the second page.
            p[2 * HugePageMemory.PageBytes - 1] = 7;
            Assert.Equal(7, p[2 * HugePageMemory.PageBytes - 1]);
        }
        finally
        {
            HugePageMemory.Free(p);
        }
        // Below a huge page: plain memory, 64-byte aligned (a small KV pool must not cost a whole huge page).
        byte* small = HugePageMemory.Allocate(1000);
        Assert.Equal(0, (long)small % 64);
        HugePageMemory.Free(small);
        Assert.Throws<ArgumentOutOfRangeException>(() => { HugePageMemory.Allocate(0); });
    }

    [Fact]
    public void TheKvBlockPoolIsOnHugePagesToo()
    {
        const string enabled = "/sys/kernel/mm/transparent_hugepage/enabled";
        using var model = KvSharp.LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        // Blocks enough for several huge pages (stories260K: 1,280 bytes a position).
        using var pool = new KvSharp.Cache.Paged.KvBlockPool(model.Config, 16, 512);
        Assert.Equal(0, (long)pool.KeyPlane % HugePageMemory.PageBytes);
        Assert.SkipUnless(OperatingSystem.IsLinux() && File.Exists(enabled) && !File.ReadAllText(enabled).Contains("[never]") && HugePageMemory.Advised,
            "transparent huge pages are off, KVSHARP_HUGEPAGES=0, or this is not Linux");
        string? eligible = SmapsField((nint)pool.KeyPlane, "THPeligible:");
        Assert.SkipWhen(eligible == null, "this kernel's smaps reports no THPeligible");
        Assert.Equal("1", eligible);
    }

    /// <summary>A field of the /proc/self/smaps entry whose mapping holds <paramref name="address"/>.</summary>
    private static string? SmapsField(nint address, string field)
    {
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            if (dash > 0 && line.Length > dash + 1 && line.IndexOf(' ') > dash && IsHex(line.AsSpan(0, dash)))
            {
                long start = long.Parse(line.AsSpan(0, dash), NumberStyles.HexNumber);
                long end = long.Parse(line.AsSpan(dash + 1, line.IndexOf(' ') - dash - 1), NumberStyles.HexNumber);
                inside = address >= start && address < end;
            }
            else if (inside && line.StartsWith(field, StringComparison.Ordinal))
                return line[field.Length..].Trim();
        }
        return null;
    }

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (char c in s)
            if (!char.IsAsciiHexDigit(c)) return false;
        return true;
    }
}
