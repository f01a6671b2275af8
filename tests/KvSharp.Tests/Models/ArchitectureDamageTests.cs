using KvSharp.Gguf;
using KvSharp.Models;
using static KvSharp.Tests.Models.ArchitectureVariants;

namespace KvSharp.Tests.Models;

/// <summary>
/// The new architectures' files with one piece missing: every tensor of a block (a fused matrix, an expert tensor, a
/// post-norm, a q/k norm, a router, a norm bias, a fused bias) and every metadata key of the architecture, one at a time. Loading must then either
/// work (a key with a default) or fail with a <see cref="ModelFormatException"/>: a missing tensor named, a missing key
/// named or caught by what it sizes (head_count_kv defaults to head_count, and then the k and v matrices' shapes are
/// named); never another exception, and never a model that quietly runs without a tensor.
/// </summary>
public class ArchitectureDamageTests
{
    public static TheoryData<string> Variants() => new(new[] { Phi3LongRope, Gemma2Q8, Gemma3F32, GraniteF32, Qwen3MoeQ8, Qwen2MoeF32, Olmo2F32,
        Phi2F32, StarCoder2F32, Gpt2F32, StableLmQ8, GptNeoXF32, Falcon40BQ8, CommandRF32, MiniCpmQ8 }.Select(v => v.Name));

    [Theory]
    [MemberData(nameof(Variants))]
    public void EveryMissingTensorIsNamed(string variant)
    {
        string source = Path(All.Single(v => v.Name == variant));
        List<string> names;
        using (var g = GgufFile.Open(source))
            names = g.Tensors.Select(t => t.Name).Where(n => n.StartsWith("blk.1.") || !n.StartsWith("blk.")).ToList();
        foreach (string missing in names)
        {
            string path = GgufRewrite.Rewrite(source, tensor: t => t.Name == missing ? null : (t.Type, t.Dimensions, Read(source, t.Name)));
            try
            {
                var e = Assert.Throws<ModelFormatException>(() => LlmModel.Load(path, new ModelLoadOptions { Threads = 1 }).Dispose());
                // A tied output falls back to the embedding, so only the tensors a file must have are named.
                Assert.Contains(missing, e.Message);
            }
            catch (Exception e) when (missing == "output.weight" && e is Xunit.Sdk.ThrowsException)
            {
                // No output matrix: the model ties its output to the embedding, as llama.cpp does.
            }
            finally
            {
                File.Delete(path);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void EveryMissingKeyLoadsOrIsNamed(string variant)
    {
        string source = Path(All.Single(v => v.Name == variant));
        string arch;
        List<string> keys;
        using (var g = GgufFile.Open(source))
        {
            arch = (string)g.Metadata["general.architecture"].Value;
            keys = g.MetadataKeys.Where(k => k.StartsWith(arch + ".")).ToList();
        }
        foreach (string missing in keys)
        {
            string path = GgufRewrite.Rewrite(source, metadata: (k, v) => v, tensor: null, add: null, drop: missing);
            try
            {
                using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 1 });
            }
            catch (ModelFormatException e)
            {
                Assert.True(e.Message.Contains(missing) || e.Message.Contains("expected ["), $"without '{missing}': {e.Message}");
                Assert.DoesNotContain('\n', e.Message);
            }
            finally
            {
                File.Delete(path);
            }
        }
    }

    private static byte[] Read(string path, string name)
    {
        using var g = GgufFile.Open(path);
        return g.GetTensorBytes(g.Tensors.Single(t => t.Name == name)).ToArray();
    }
}
