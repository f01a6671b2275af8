using System.Net;
using System.Net.Http.Headers;
using KvSharp.Server.Inspector;

namespace KvSharp.Server.Tests.Inspector;

public class InspectorKeyFixture : ServerFixture
{
    public const string Key = "inspector-key";
    protected override ServerOptions Options => base.Options with { ApiKey = Key };
}

/// <summary>With --api-key the page loads (it holds no data) but its snapshots need the key, like every other endpoint.</summary>
public class InspectorAuthTests(InspectorKeyFixture server) : IClassFixture<InspectorKeyFixture>
{
    [Fact]
    public async Task ThePageIsPublicTheSnapshotsNeedTheKey()
    {
        var ct = TestContext.Current.CancellationToken;
        foreach (string path in new[] { "/", "/inspector/inspector.js", "/inspector/inspector.css" })
        {
            using var response = await server.Client.GetAsync(path, ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        foreach (string path in new[] { InspectorEndpoints.SnapshotPath, InspectorEndpoints.EventsPath, "/inspector/nothing.js" })
        {
            using var response = await server.Client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, ct);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
        using var request = new HttpRequestMessage(HttpMethod.Get, InspectorEndpoints.SnapshotPath);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", InspectorKeyFixture.Key);
        using var authorised = await server.Client.SendAsync(request, ct);
        Assert.Equal(HttpStatusCode.OK, authorised.StatusCode);
    }
}
