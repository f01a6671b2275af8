using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>`kvsharp serve` as a user runs it: it says where it listens, answers there, and stops cleanly on Ctrl-C (SIGINT).</summary>
public class ServeCommandTests
{
    /// <summary>`kvsharp serve` on stories260K with one thread, as a child process (KvSharp.Cli.dll beside the tests), stdin closed.</summary>
    private static Process StartServe(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "KvSharp.Cli.dll"), "serve", "--model", TestPaths.Model("stories260K.gguf"), "--threads", "1" })
            psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        process.StandardInput.Close();
        return process;
    }

    [Fact]
    public async Task ServeListensOnLoopbackAnswersAndStopsOnSigint()
    {
        var ct = TestContext.Current.CancellationToken;
        using var process = StartServe("--port", "0", "--stored-responses", "1");
        try
        {
            var address = await AddressAsync(process, ct);
            var rest = process.StandardError.ReadToEndAsync(ct);

            using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(120) };
            var health = JsonDocument.Parse(await client.GetStringAsync("/health", ct)).RootElement;
            Assert.Equal("ok", health.GetProperty("status").GetString());
            using var completion = await client.PostAsync("/v1/completions",
                new StringContent("{\"prompt\": \"Once upon a time\", \"max_tokens\": 5, \"temperature\": 0}", System.Text.Encoding.UTF8, "application/json"), ct);
            completion.EnsureSuccessStatusCode();
            using var chat = await client.PostAsync("/v1/chat/completions",
                new StringContent("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 5}", System.Text.Encoding.UTF8, "application/json"), ct);
            chat.EnsureSuccessStatusCode();
            // --stored-responses 1: a second response pushes the first out.
            string[] ids = new string[2];
            for (int i = 0; i < 2; i++)
            {
                using var created = await client.PostAsync("/v1/responses",
                    new StringContent("{\"input\": \"Hi\", \"max_output_tokens\": 2}", System.Text.Encoding.UTF8, "application/json"), ct);
                created.EnsureSuccessStatusCode();
                ids[i] = JsonDocument.Parse(await created.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("id").GetString()!;
            }
            using (var first = await client.GetAsync($"/v1/responses/{ids[0]}", ct)) Assert.Equal(System.Net.HttpStatusCode.NotFound, first.StatusCode);
            using (var second = await client.GetAsync($"/v1/responses/{ids[1]}", ct)) Assert.Equal(System.Net.HttpStatusCode.OK, second.StatusCode);

            using (var kill = Process.Start("kill", ["-INT", process.Id.ToString()])!) await kill.WaitForExitAsync(ct);
            using var exit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            exit.CancelAfter(TimeSpan.FromSeconds(120));
            await process.WaitForExitAsync(exit.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.Contains("[kvsharp] stopped", await rest);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task ABudgetSmallerThanOneContextIsWarnedAtStartup()
    {
        var ct = TestContext.Current.CancellationToken;
        // 1 MiB of F32 KV at 1,280 bytes per token: 51 blocks of 16, 816 tokens, for a context of 4,000.
        using var process = StartServe("--port", "0", "--kv-budget-mib", "1", "--context", "4000");
        try
        {
            await AddressAsync(process, ct);
            using var startup = CancellationTokenSource.CreateLinkedTokenSource(ct);
            startup.CancelAfter(TimeSpan.FromSeconds(120));
            string? line;
            while ((line = await process.StandardError.ReadLineAsync(startup.Token)) is { } && !line.StartsWith("warning: --kv-budget-mib", StringComparison.Ordinal)) { }
            Assert.Equal("warning: --kv-budget-mib 1 holds 816 tokens of KV, fewer than one sequence of the context 4,000: a request that needs more is refused " +
                "(raise --kv-budget-mib or lower --context)", line);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Reads the server's stderr up to its "serving ... at URL" line and returns the URL.</summary>
    private static async Task<Uri> AddressAsync(Process process, CancellationToken ct)
    {
        var stderr = new System.Text.StringBuilder();
        using var startup = CancellationTokenSource.CreateLinkedTokenSource(ct);
        startup.CancelAfter(TimeSpan.FromSeconds(120));
        while (await process.StandardError.ReadLineAsync(startup.Token) is { } line)
        {
            stderr.AppendLine(line);
            var m = Regex.Match(line, @"serving stories260K\.gguf at (http://127\.0\.0\.1:\d+/?)");
            if (m.Success) return new Uri(m.Groups[1].Value);
        }
        Assert.Fail($"no 'serving ... at' line; stderr:\n{stderr}");
        return null!;
    }

    /// <summary>
    /// `kvsharp serve --kv-type-k kivi4 --kv-type-v kivi2`: the engine pages KIVI (blocks of 32, its group) and writes
    /// what an in-process session with the same KV types writes, greedily, past several group turns.
    /// </summary>
    [Fact]
    public async Task ServeWithKiviKeysAndValuesWritesWhatASessionWrites()
    {
        var ct = TestContext.Current.CancellationToken;
        const string prompt = "Once upon a time, there was a little girl named Lily.";
        string expected;
        using (var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 }))
        using (var session = model.CreateSession(new SessionOptions
        {
            ContextLength = 512, KeyElementType = KvSharp.Cache.KvElementType.Kivi4, ValueElementType = KvSharp.Cache.KvElementType.Kivi2,
        }))
        using (var exact = model.CreateSession(new SessionOptions { ContextLength = 512 }))
        {
            expected = string.Concat(session.Generate(prompt, new GenerationOptions { MaxTokens = 150 }));
            // Long enough for key groups to turn (past 96 positions), and KIVI really changes what is written.
            Assert.True(session.Tokens.Count > 120, $"{session.Tokens.Count} tokens");
            Assert.NotEqual(string.Concat(exact.Generate(prompt, new GenerationOptions { MaxTokens = 150 })), expected);
        }
        using var process = StartServe("--port", "0", "--context", "512", "--kv-type-k", "kivi4", "--kv-type-v", "kivi2");
        try
        {
            var address = await AddressAsync(process, ct);
            using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
            var body = new System.Text.Json.Nodes.JsonObject { ["prompt"] = prompt, ["max_tokens"] = 150, ["temperature"] = 0 };
            using var completion = await client.PostAsync("/v1/completions", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"), ct);
            string answer = await completion.Content.ReadAsStringAsync(ct);
            Assert.True(completion.IsSuccessStatusCode, answer);
            var text = JsonDocument.Parse(answer).RootElement.GetProperty("choices")[0].GetProperty("text").GetString();
            Assert.Equal(expected, text);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    [Theory]
    [InlineData("--port", "70000", "--port must be a whole number in [0, 65535], got '70000'")]
    [InlineData("--max-queue", "-1", "--max-queue must be a whole number >= 0, got '-1'")]
    [InlineData("--stored-responses", "-1", "--stored-responses must be a whole number >= 0, got '-1'")]
    [InlineData("--host", "somewhere", "--host somewhere is not an IP address or 'localhost'")]
    [InlineData("--chat-template", "nosuch", "--chat-template 'nosuch' is neither a built-in template")]
    [InlineData("--kv-policy", "window:600", "--kv-policy: cache policy 'window:600' keeps 600 positions, more than the context length of 128 (--context raises it)")]
    public async Task BadOptionsAreOneLineAndExitCode1(string option, string value, string expected)
    {
        using var process = StartServe(option, value);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var exit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        exit.CancelAfter(TimeSpan.FromSeconds(120));
        try { await process.WaitForExitAsync(exit.Token); }
        finally { if (!process.HasExited) process.Kill(entireProcessTree: true); }
        Assert.Equal(1, process.ExitCode);
        Assert.Contains(expected, await stderr);
    }
}
