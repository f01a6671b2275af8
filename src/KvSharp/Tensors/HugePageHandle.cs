using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>
/// One region from <see cref="HugePageMemory.Allocate"/>, freed exactly once: by <see cref="SafeHandle.Dispose()"/>, or
/// by the critical finalizer when its owner was dropped without being disposed (a <c>KvCache</c> a caller forgets).
/// </summary>
/// <remarks>
/// The GC is told of the region's size while it lives (<see cref="GC.AddMemoryPressure"/>): it otherwise sees only
/// this small object, and would not collect the caches a loop drops soon enough to free their native rows.
/// </remarks>
internal sealed unsafe class HugePageHandle : SafeHandle
{
    private readonly long _bytes;

    public HugePageHandle(long bytes) : base(0, ownsHandle: true)
    {
        SetHandle((nint)HugePageMemory.Allocate(bytes));
        _bytes = bytes;
        GC.AddMemoryPressure(bytes);
    }

    public byte* Pointer => (byte*)handle;

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        HugePageMemory.Free((byte*)handle);
        GC.RemoveMemoryPressure(_bytes);
        return true;
    }
}
