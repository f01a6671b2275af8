using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// F32 over sixteen rows (two column-major groups, one row per lane) by four or eight tokens:
/// <see cref="VecDotAvx2Interleaved.F32x4"/>'s two chains per row and token (even columns, odd columns, added at the
/// end) with each lane doing exactly its FMAs in its order, so every output has the AVX2 kernels' bits. Per column pair
/// two weight loads serve all the tokens, and each FMA does sixteen multiply-adds where the AVX2 kernels do eight, which
/// pays where the core runs 512-bit FMAs whole (Zen 5). One token runs the AVX2 kernels (<see cref="KernelPaths"/>:
/// decode streams weights), and so do the last tokens short of four.
/// </summary>
internal static unsafe partial class VecDotAvx512Interleaved
{
    /// <summary>Sixteen F32 rows (groups at w and w + groupBytes) by four tokens.</summary>
    private static void F32X4(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        float* x = (float*)y;
        nint s = yStride / sizeof(float);
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        int c = 0;
        for (; c + 2 <= n; c += 2, w += 64)
        {
            Column4(Load2(w, groupBytes, 0).AsSingle(), x + c, s, ref a0, ref a1, ref a2, ref a3);
            Column4(Load2(w, groupBytes, 32).AsSingle(), x + c + 1, s, ref b0, ref b1, ref b2, ref b3);
        }
        if (c < n) Column4(Load2(w, groupBytes, 0).AsSingle(), x + c, s, ref a0, ref a1, ref a2, ref a3);
        Store4(output, outStride, a0 + b0, a1 + b1, a2 + b2, a3 + b3);
    }

    /// <summary>Sixteen F32 rows by eight tokens: <see cref="F32X4"/> for tokens 0..3 and 4..7 sharing each weight load.</summary>
    private static void F32X8(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        float* x = (float*)y, x4 = (float*)(y + 4 * yStride);
        nint s = yStride / sizeof(float);
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        Vector512<float> a4 = default, b4 = default, a5 = default, b5 = default, a6 = default, b6 = default, a7 = default, b7 = default;
        int c = 0;
        for (; c + 2 <= n; c += 2, w += 64)
        {
            Vector512<float> we = Load2(w, groupBytes, 0).AsSingle(), wo = Load2(w, groupBytes, 32).AsSingle();
            Column4(we, x + c, s, ref a0, ref a1, ref a2, ref a3);
            Column4(wo, x + c + 1, s, ref b0, ref b1, ref b2, ref b3);
            Column4(we, x4 + c, s, ref a4, ref a5, ref a6, ref a7);
            Column4(wo, x4 + c + 1, s, ref b4, ref b5, ref b6, ref b7);
        }
        if (c < n)
        {
            Vector512<float> we = Load2(w, groupBytes, 0).AsSingle();
            Column4(we, x + c, s, ref a0, ref a1, ref a2, ref a3);
            Column4(we, x4 + c, s, ref a4, ref a5, ref a6, ref a7);
        }
        Store4(output, outStride, a0 + b0, a1 + b1, a2 + b2, a3 + b3);
        Store4(output + 4 * outStride, outStride, a4 + b4, a5 + b5, a6 + b6, a7 + b7);
    }

    /// <summary>One column's sixteen weights times four tokens' activations (at x, x + s, x + 2s, x + 3s) into their chains.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Column4(Vector512<float> wv, float* x, nint s,
        ref Vector512<float> t0, ref Vector512<float> t1, ref Vector512<float> t2, ref Vector512<float> t3)
    {
        t0 = Avx512F.FusedMultiplyAdd(wv, Vector512.Create(x[0]), t0);
        t1 = Avx512F.FusedMultiplyAdd(wv, Vector512.Create(x[s]), t1);
        t2 = Avx512F.FusedMultiplyAdd(wv, Vector512.Create(x[2 * s]), t2);
        t3 = Avx512F.FusedMultiplyAdd(wv, Vector512.Create(x[3 * s]), t3);
    }
}
