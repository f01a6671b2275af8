using System.Diagnostics;
using System.Globalization;

namespace KvSharp.Cli.Bench;

/// <summary>
/// A headless Chromium-family browser showing one page, started for a measurement and killed after it, with a
/// profile directory of its own (so no earlier session's state or another running browser changes what it does).
/// It can say how much CPU time its processes (the browser and every child: renderer, GPU and utility processes)
/// have used, read from /proc, which is what the page costs the machine beside the server.
/// </summary>
internal sealed class HeadlessBrowser : IDisposable
{
    private readonly Process _process;
    private readonly string _profile;

    private HeadlessBrowser(Process process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    /// <summary>Starts <paramref name="executable"/> headless on <paramref name="url"/> at the inspector's usual window size.</summary>
    /// <exception cref="InvalidOperationException">The browser would not start (the message names the executable).</exception>
    public static HeadlessBrowser Open(string executable, Uri url)
    {
        string profile = Directory.CreateTempSubdirectory("kvsharp-browser-").FullName;
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in (string[])["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--window-size=1280,1180", $"--user-data-dir={profile}", url.ToString()])
            start.ArgumentList.Add(arg);
        try
        {
            var process = Process.Start(start) ?? throw new InvalidOperationException($"--browser {executable}: the process did not start");
            // Its chatter on stdout/stderr is drained and dropped, so a full pipe never blocks it.
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return new HeadlessBrowser(process, profile);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Directory.Delete(profile, recursive: true);
            throw new InvalidOperationException($"--browser {executable}: cannot start it ({e.Message})", e);
        }
    }

    /// <summary>Whether the browser exited by itself (a crash, or a bad flag): a measurement with it would be wrong.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>
    /// CPU time (user + system) used so far by the browser and all its descendants still running, from /proc; null
    /// where there is no /proc (not Linux).
    /// </summary>
    public TimeSpan? CpuTime()
    {
        if (!Directory.Exists("/proc/self")) return null;
        var parents = new Dictionary<int, int>();
        var ticks = new Dictionary<int, long>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (ReadStat(pid) is not var (parent, used)) continue;
            parents[pid] = parent;
            ticks[pid] = used;
        }
        long total = 0;
        foreach (var (pid, used) in ticks)
            if (Descends(pid, parents)) total += used;
        // /proc counts in clock ticks, USER_HZ, which is 100 on every Linux build .NET runs on.
        return TimeSpan.FromSeconds(total / 100.0);
    }

    private bool Descends(int pid, Dictionary<int, int> parents)
    {
        for (int hops = 0; hops < 64; hops++)
        {
            if (pid == _process.Id) return true;
            if (!parents.TryGetValue(pid, out pid) || pid <= 1) return false;
        }
        return false;
    }

    /// <summary>A process's parent and its utime + stime in ticks; null if it is gone or unreadable.</summary>
    private static (int Parent, long Ticks)? ReadStat(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from the last ')'.
        int close = stat.LastIndexOf(')');
        if (close < 0) return null;
        string[] fields = stat[(close + 2)..].Split(' ');
        // After comm: state(0) ppid(1) ... utime(11) stime(12).
        if (fields.Length < 13) return null;
        return (int.Parse(fields[1], CultureInfo.InvariantCulture),
            long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture));
    }

    /// <summary>Kills the browser and all its processes, waits for them to be gone, and deletes its profile.</summary>
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        finally
        {
            _process.Dispose();
            try
            {
                Directory.Delete(_profile, recursive: true);
            }
            catch (IOException)
            {
                // A child still closing a file in it: the temp directory is left for the system to clean.
            }
        }
    }
}
