using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>
/// One region from <see cref="HugePageMemory.Allocate"/>, freed exactly once: by <see cref="SafeHandle.Dispose()"/>, or
/// by the critical finalizer when its owner was dropped without being disposed (a <c>KvCache</c> a caller forgets).
/// </summary>
internal sealed unsafe class HugePageHandle : SafeHandle
{
    public HugePageHandle(long bytes) : base(0, ownsHandle: true) => SetHandle((nint)HugePageMemory.Allocate(bytes));

    public byte* Pointer => (byte*)handle;

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        HugePageMemory.Free((byte*)handle);
        return true;
    }
}
