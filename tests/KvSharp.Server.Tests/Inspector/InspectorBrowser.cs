using Microsoft.Playwright;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>
/// Headless Chromium through Playwright's .NET API: the system's browser (Debian's chromium package, which .ci/run
/// installs), never one Playwright downloads. Without it the test fails and says how to get it: the page must be
/// tested in a real browser, and a skipped test would hide that it was not.
/// </summary>
internal static class InspectorBrowser
{
    /// <summary>Where Chromium is: $KVSHARP_CHROMIUM, else Debian's /usr/bin/chromium.</summary>
    public static string ExecutablePath => Environment.GetEnvironmentVariable("KVSHARP_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public static async Task<(IPlaywright Playwright, IBrowser Browser)> LaunchAsync()
    {
        string path = ExecutablePath;
        if (!File.Exists(path))
            Assert.Fail($"the inspector's browser test needs Chromium at {path}: run `bash .ci/run` (it installs Debian's chromium), " +
                "or `apt-get install chromium`, or set KVSHARP_CHROMIUM to a Chromium or Chrome executable");
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = path, Headless = true });
            return (playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }
}
