using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace KvSharp.Server.Tests;

public sealed class KeyedServerFixture : ServerFixture
{
    public const string Key = "sk-test-key";
    protected override ServerOptions Options => base.Options with { ApiKey = Key };
}

/// <summary>With --api-key, everything but /health needs the key, as a bearer token or X-Api-Key.</summary>
public class AuthTests(KeyedServerFixture server) : IClassFixture<KeyedServerFixture>
{
    private async Task<(HttpStatusCode, JsonElement)> Send(HttpMethod method, string path, Action<HttpRequestHeaders> headers)
    {
        using var request = new HttpRequestMessage(method, path);
        if (method == HttpMethod.Post) request.Content = new StringContent("{\"prompt\": \"Once\", \"max_tokens\": 3}", Encoding.UTF8, "application/json");
        headers(request.Headers);
        using var response = await server.Client.SendAsync(request, TestContext.Current.CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement.Clone());
    }

    [Theory]
    [InlineData("GET", "/v1/models")]
    [InlineData("POST", "/v1/completions")]
    [InlineData("POST", "/tokenize")]
    public async Task AMissingOrWrongKeyIs401(string method, string path)
    {
        var m = new HttpMethod(method);
        var (status, json) = await Send(m, path, _ => { });
        BadRequestTests.AssertError(HttpStatusCode.Unauthorized, "invalid_api_key", null, status, json);
        (status, json) = await Send(m, path, h => h.Authorization = new AuthenticationHeaderValue("Bearer", "sk-wrong"));
        BadRequestTests.AssertError(HttpStatusCode.Unauthorized, "invalid_api_key", null, status, json);
    }

    [Fact]
    public async Task TheRightKeyPassesAsBearerOrXApiKey()
    {
        var (status, _) = await Send(HttpMethod.Post, "/v1/completions", h => h.Authorization = new AuthenticationHeaderValue("Bearer", KeyedServerFixture.Key));
        Assert.Equal(HttpStatusCode.OK, status);
        (status, _) = await Send(HttpMethod.Get, "/v1/models", h => h.Add("X-Api-Key", KeyedServerFixture.Key));
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task HealthNeedsNoKey()
    {
        var (status, json) = await Send(HttpMethod.Get, "/health", _ => { });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ok", json.GetProperty("status").GetString());
    }
}
