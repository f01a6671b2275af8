using System.Text.RegularExpressions;
using KvSharp.Cli;
using YamlDotNet.RepresentationModel;

namespace KvSharp.Tests.Deploy;

/// <summary>
/// deploy/: the systemd units and Kubernetes manifests docs/deploy.md describes. No cluster runs them here, so these
/// check what can go stale without one: every `kvsharp` command line in them parses with the CLI as it is now (an
/// option renamed or removed fails here, not on someone's cluster), and each manifest has the fields Kubernetes
/// requires, with a pod template its selector matches.
/// </summary>
public class DeployFilesTests
{
    private static readonly string Deploy = Path.Combine(TestPaths.RepoRoot, "deploy");

    public static TheoryData<string> Units() => [.. Directory.GetFiles(Path.Combine(Deploy, "systemd"), "kvsharp*.service").Select(f => Path.GetFileName(f))];

    public static TheoryData<string> Manifests() => [.. Directory.GetFiles(Path.Combine(Deploy, "kubernetes"), "*.yaml").Select(f => Path.GetFileName(f))];

    [Theory]
    [MemberData(nameof(Units))]
    public void EveryKvSharpUnitsCommandLineParses(string unit)
    {
        string text = File.ReadAllText(Path.Combine(Deploy, "systemd", unit));
        // systemd joins lines ending in a backslash.
        string[] lines = text.Replace("\\\n", " ").Split('\n');
        var environment = new Dictionary<string, string>();
        foreach (string line in lines.Where(l => l.StartsWith("Environment=", StringComparison.Ordinal)))
        {
            // Environment=NAME=value or Environment="NAME=value with spaces".
            string assignment = line["Environment=".Length..].Trim().Trim('"');
            int eq = assignment.IndexOf('=');
            environment[assignment[..eq]] = assignment[(eq + 1)..];
        }
        string exec = Assert.Single(lines, l => l.StartsWith("ExecStart=", StringComparison.Ordinal));
        // ${NAME} is one word; $NAME is split at spaces, as systemd does.
        string expanded = Regex.Replace(exec["ExecStart=".Length..], @"\$\{(\w+)\}|\$(\w+)", m =>
        {
            string name = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
            Assert.True(environment.TryGetValue(name, out string? value), $"{unit}: ExecStart uses ${name}, which no Environment= line sets");
            return value;
        });
        string[] words = expanded.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith("/kvsharp", words[0]);
        AssertParses($"{unit} ExecStart", words[1..]);
    }

    [Theory]
    [MemberData(nameof(Manifests))]
    public void EveryManifestIsWellFormedAndItsKvSharpContainersParse(string manifest)
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(Deploy, "kubernetes", manifest))) yaml.Load(reader);
        Assert.NotEmpty(yaml.Documents);
        int number = 0;
        foreach (var document in yaml.Documents)
        {
            string where = $"{manifest} document {++number}";
            var root = (YamlMappingNode)document.RootNode;
            Assert.False(string.IsNullOrEmpty(Scalar(root, "apiVersion")), $"{where}: no apiVersion");
            string kind = Scalar(root, "kind") ?? throw new Xunit.Sdk.XunitException($"{where}: no kind");
            Assert.False(string.IsNullOrEmpty(Scalar(Map(root, "metadata"), "name")), $"{where}: no metadata.name");
            if (kind is not ("Deployment" or "StatefulSet")) continue;
            var spec = Map(root, "spec");
            var template = Map(spec, "template");
            var labels = Map(Map(template, "metadata"), "labels");
            foreach (var (key, value) in Map(Map(spec, "selector"), "matchLabels").Children)
                Assert.True(labels.Children.TryGetValue(key, out var label) && label.ToString() == value.ToString(),
                    $"{where}: the selector's {key}={value} is not among the pod template's labels");
            var containers = (YamlSequenceNode)Map(template, "spec").Children["containers"];
            Assert.NotEmpty(containers.Children);
            foreach (YamlMappingNode container in containers.Children.Cast<YamlMappingNode>())
            {
                Assert.False(string.IsNullOrEmpty(Scalar(container, "image")), $"{where}: container {Scalar(container, "name")} has no image");
                string[] command = Words(container, "command");
                if (command is not ["kvsharp", ..]) continue;
                AssertParses($"{where} container {Scalar(container, "name")}", [.. command[1..], .. Words(container, "args")]);
            }
        }
    }

    private static void AssertParses(string where, string[] args)
    {
        var result = CliApp.Create().Parse(args);
        Assert.True(result.Errors.Count == 0, $"{where}: `kvsharp {string.Join(' ', args)}` does not parse: {string.Join("; ", result.Errors.Select(e => e.Message))}");
        Assert.NotEqual(CliApp.Name, result.CommandResult.Command.Name);
    }

    private static YamlMappingNode Map(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(key, out var child) && child is YamlMappingNode map ? map : throw new Xunit.Sdk.XunitException($"no mapping '{key}'");

    private static string? Scalar(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(key, out var child) && child is YamlScalarNode scalar ? scalar.Value : null;

    private static string[] Words(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(key, out var child) && child is YamlSequenceNode list ? [.. list.Children.Select(c => ((YamlScalarNode)c).Value!)] : [];
}
