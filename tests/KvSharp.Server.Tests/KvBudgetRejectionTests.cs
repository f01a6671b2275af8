using System.Net;
using System.Text;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>A server whose whole KV budget is 4 blocks of 16 positions, well inside its 512-token context.</summary>
public sealed class SmallKvBudgetFixture : ServerFixture
{
    protected override ServerOptions Options => base.Options with { Engine = new EngineOptions { ContextLength = 512, BlockCount = 4 } };
}

/// <summary>
/// A request that fits the context but not the KV budget is a 400 whose <c>param</c> names the field that made it too
/// large: <c>max_tokens</c> when the prompt alone would fit, else the prompt's field (<c>prompt</c> or <c>messages</c>).
/// </summary>
public class KvBudgetRejectionTests(SmallKvBudgetFixture server) : IClassFixture<SmallKvBudgetFixture>
{
    private static readonly string LongText = string.Join(' ', Enumerable.Repeat("Once upon a time there was a little girl.", 12));

    [Theory]
    [InlineData("/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 200}", "max_tokens")]
    [InlineData("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 200}", "max_tokens")]
    [InlineData("/v1/completions", "{\"prompt\": \"LONG\", \"max_tokens\": 1}", "prompt")]
    [InlineData("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"LONG\"}], \"max_tokens\": 1}", "messages")]
    public async Task ARequestBeyondTheKvBudgetNamesTheFieldThatMadeItTooLarge(string path, string body, string param)
    {
        var (status, json) = await server.SendAsync(path, new StringContent(body.Replace("LONG", LongText), Encoding.UTF8, "application/json"),
            TestContext.Current.CancellationToken);
        BadRequestTests.AssertError(HttpStatusCode.BadRequest, "request_rejected", param, status, json);
        Assert.Contains("KV blocks but the whole budget holds 4", json.GetProperty("error").GetProperty("message").GetString());
    }
}
