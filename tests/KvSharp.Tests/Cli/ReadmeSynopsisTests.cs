using System.CommandLine;

namespace KvSharp.Tests.Cli;

/// <summary>
/// The README's CLI table names every option of each command it describes in full, so that a reader never meets in
/// `--help` an option the README left out. bench and router are left out here: their rows point to the documents
/// that list their many tuning options (docs/benchmarks.md, docs/deploy.md).
/// </summary>
public class ReadmeSynopsisTests
{
    [Theory]
    [InlineData("run")]
    [InlineData("chat")]
    [InlineData("inspect")]
    [InlineData("tokenize")]
    [InlineData("logits")]
    [InlineData("eval")]
    [InlineData("serve")]
    public void TheReadmeRowOfACommandNamesEveryOptionItsHelpLists(string name)
    {
        string readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        string row = Assert.Single(readme.Split('\n'), l => l.StartsWith($"| `kvsharp {name} ", StringComparison.Ordinal));
        string synopsis = row.Split("` |")[0];
        var command = KvSharp.Cli.CliApp.Create().Subcommands.Single(c => c.Name == name);
        var missing = command.Options.Where(o => o is not System.CommandLine.Help.HelpOption)
            .Where(o => !System.Text.RegularExpressions.Regex.IsMatch(synopsis, $@"{System.Text.RegularExpressions.Regex.Escape(o.Name)}(?![\w-])")).Select(o => o.Name).ToArray();
        Assert.True(missing.Length == 0, $"README's kvsharp {name} row lacks {string.Join(", ", missing)}");
    }
}
