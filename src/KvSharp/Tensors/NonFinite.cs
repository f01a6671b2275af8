using System.Numerics;
using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>Finds NaN and infinity in activations (damaged weights show up as these, and then spread everywhere).</summary>
public static class NonFinite
{
    /// <summary>
    /// True when some element is NaN or infinite. x - x is 0 for every finite x and NaN otherwise, so one
    /// subtract-and-add per vector and a single test at the end: a pass over the data at memory speed.
    /// </summary>
    public static bool Any(ReadOnlySpan<float> x)
    {
        int i = 0;
        float scalar = 0f;
        if (Vector.IsHardwareAccelerated)
        {
            var acc = Vector<float>.Zero;
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x);
            foreach (var v in xv) acc += v - v;
            scalar = Vector.Sum(acc);
            i = xv.Length * Vector<float>.Count;
        }
        for (; i < x.Length; i++) scalar += x[i] - x[i];
        return scalar != 0f;
    }
}
