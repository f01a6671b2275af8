using System.Collections.Frozen;
using System.Reflection;
using System.Security.Cryptography;

namespace KvSharp.Server.Inspector;

/// <summary>
/// The inspector page's files (HTML, CSS, JS), embedded in this assembly from Inspector/Page: nothing is read from
/// disk or a CDN at run time. Read once, each with a content hash for its ETag.
/// </summary>
internal static class InspectorAssets
{
    /// <summary>Where the page's script and style are served from (the page itself is at "/").</summary>
    public const string Prefix = "/inspector/";
    private const string ResourcePrefix = "KvSharp.Server.Inspector.Page.";

    public static readonly FrozenDictionary<string, Asset> Files = Load();

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(InspectorAssets).Assembly;
        var files = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (string resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal)) continue;
            string name = resource[ResourcePrefix.Length..];
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            byte[] bytes = copy.ToArray();
            files[name] = new Asset(bytes, ContentType(name), $"\"{Convert.ToHexStringLower(SHA256.HashData(bytes))[..16]}\"");
        }
        if (!files.ContainsKey("index.html"))
            throw new InvalidOperationException($"{assembly.GetName().Name} lacks its embedded inspector page ({ResourcePrefix}index.html): check the EmbeddedResource items of KvSharp.Server.csproj");
        return files.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static string ContentType(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".svg" => "image/svg+xml",
        _ => throw new InvalidOperationException($"inspector page file {name}: no content type for its extension"),
    };

    /// <summary>The page and its files carry no data, so they need no API key (the snapshot endpoints do).</summary>
    public static bool IsPublic(string path) => path == "/" || (path.StartsWith(Prefix, StringComparison.Ordinal) && Files.ContainsKey(path[Prefix.Length..]));
}

internal sealed record Asset(byte[] Bytes, string ContentType, string ETag);
