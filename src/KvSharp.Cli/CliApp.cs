using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using KvSharp.Cli.Bench;
using KvSharp.Cli.Chat;

namespace KvSharp.Cli;

/// <summary>
/// The `kvsharp` command: its subcommands, and the one place errors become one line on stderr. Parse errors (an
/// unknown option, a value out of range) are reported by their message alone, without the help dump
/// System.CommandLine prints by default; exceptions from the library go through <see cref="CliErrors"/>.
/// </summary>
internal static class CliApp
{
    public const string Name = "kvsharp";

    /// <summary>
    /// The root is a plain command named "kvsharp", not a RootCommand: a RootCommand takes the name of the running
    /// file, and help would say "Usage: KvSharp.Cli" under `dotnet run` and for the installed tool alike.
    /// </summary>
    public static Command Create()
    {
        var root = new Command(Name, "kvsharp — run LLMs in pure C#, with the KV cache in plain view")
        {
            RunCommand.Create(),
            ChatCommand.Create(),
            InspectCommand.Create(),
            TokenizeCommand.Create(),
            LogitsCommand.Create(),
            EvalCommand.Create(),
            BenchCommand.Create(),
            ServeCommand.Create(),
            RouterCommand.Create(),
        };
        root.Options.Add(new HelpOption { Recursive = true });
        root.Options.Add(new VersionOption());
        return root;
    }

    public static int Run(string[] args)
    {
        var result = Create().Parse(args);
        if (result.Action is ParseErrorAction)
        {
            Console.Error.WriteLine($"error: {ParseErrors(result)}");
            return CliErrors.UserError;
        }
        return CliErrors.Run(() => result.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
    }

    /// <summary>Every parse error on one line, and where to read more.</summary>
    private static string ParseErrors(ParseResult result)
    {
        var messages = result.Errors.Select(e => WithoutTypeNames(CliErrors.Message(new FormatException(e.Message)))).Distinct();
        var command = result.CommandResult.Command;
        string help = command.Name == Name ? $"{Name} --help" : $"{Name} {command.Name} --help";
        return $"{string.Join("; ", messages)} (see '{help}')";
    }

    /// <summary>
    /// System.CommandLine's own conversion error, for an option that does not parse its value itself (see
    /// <see cref="NumberOption"/>), names the .NET type ("as expected type 'System.Nullable`1[System.Int32]'"): say it in words.
    /// </summary>
    internal static string WithoutTypeNames(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"^Cannot parse argument '(.*)' for (?:option|argument) '(.*)' as expected type '(?:System\.Nullable`1\[)?System\.(\w+)\]?'");
        if (!m.Success) return message;
        string kind = m.Groups[3].Value switch
        {
            "Int32" or "Int64" or "UInt64" or "UInt32" => "a whole number",
            "Single" or "Double" => "a number",
            _ => "a " + m.Groups[3].Value.ToLowerInvariant(),
        };
        return $"{m.Groups[2].Value} must be {kind}, got '{m.Groups[1].Value}'";
    }
}
