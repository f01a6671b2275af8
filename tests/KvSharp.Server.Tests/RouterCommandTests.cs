using System.Diagnostics;

namespace KvSharp.Server.Tests;

/// <summary>`kvsharp router` as a user runs it, as a child process (KvSharp.Cli.dll beside the tests).</summary>
public class RouterCommandTests
{
    /// <summary>
    /// Its logs go to stderr and stdout stays the caller's: a replica taken out of rotation is logged, and nothing reaches
    /// stdout (`kvsharp bench --scenario router --json`, whose router runs in process, prints its JSON there, and such a
    /// warning once landed in the middle of it).
    /// </summary>
    [Fact]
    public async Task ItsLogsGoToStderrAndLeaveStdoutAlone()
    {
        var ct = TestContext.Current.CancellationToken;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Port 9 (discard) on loopback: nothing listens, so the first health check takes the replica out.
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "KvSharp.Cli.dll"), "router", "--replica", "http://127.0.0.1:9", "--port", "0" })
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = new System.Text.StringBuilder();
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(TimeSpan.FromSeconds(60));
            while (await process.StandardError.ReadLineAsync(wait.Token) is { } line)
            {
                stderr.AppendLine(line);
                if (line.Contains("taken out of rotation", StringComparison.Ordinal)) break;
            }
            Assert.True(stderr.ToString().Contains("taken out of rotation", StringComparison.Ordinal), stderr.ToString());
            using (var kill = Process.Start("kill", ["-INT", process.Id.ToString()])!) await kill.WaitForExitAsync(ct);
            await process.WaitForExitAsync(wait.Token);
            Assert.Equal("", await stdout);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
