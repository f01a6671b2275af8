using System.Diagnostics;

namespace KvSharp.Tests.Cli;

/// <summary>Runs the real `kvsharp` program (KvSharp.Cli.dll beside the tests) as a child process.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>Runs with an empty, closed standard input (as `kvsharp ... &lt; /dev/null`), never the test host's.</summary>
    public static Result Run(params string[] args) => RunWithInput("", args);

    /// <summary>Runs with <paramref name="stdin"/> piped to standard input.</summary>
    public static Result RunWithInput(string stdin, params string[] args) => RunWith(stdin, null, args);

    /// <summary>Runs with the environment variable <paramref name="variable"/> = value set for the child.</summary>
    public static Result RunWithEnvironment((string Name, string Value) variable, params string[] args) => RunWith("", variable, args);

    private static Result RunWith(string stdin, (string Name, string Value)? variable, string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "KvSharp.Cli.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (variable is var (name, value)) psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("kvsharp " + string.Join(' ', args) + " did not finish in 2 minutes");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
