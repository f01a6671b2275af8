using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>
/// A server whose engine does not step by itself: the test calls <see cref="LlmEngine.Step"/>, so what the page and the
/// snapshot endpoints show can be checked at each step, with no race against a background loop. A small pool of
/// small blocks, so the map is small and a short prompt fills several blocks.
/// </summary>
public class InspectorServerFixture : ServerFixture
{
    protected override ServerOptions Options => new()
    {
        Port = 0,
        ManualEngineSteps = true,
        Engine = new EngineOptions { ContextLength = 256, BlockSize = 4, BlockCount = 64, MaxRunningSequences = 8 },
    };

    /// <summary>Posts a completion (which waits for the engine to be stepped) and returns once the engine has queued it.</summary>
    public async Task<Task<JsonElement>> SubmitAsync(string prompt, int maxTokens, int samples = 1)
    {
        int waiting = Engine.WaitingCount;
        var response = CompleteAsync(new JsonObject { ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["n"] = samples, ["ignore_eos"] = true });
        await WaitUntilAsync(() => Engine.WaitingCount > waiting || response.IsCompleted, "the engine to queue the request");
        if (response.IsCompleted) await response; // a failure surfaces now
        return response;
    }

    /// <summary>Steps the engine until nothing is left, then waits for the responses.</summary>
    public async Task FinishAsync(params Task<JsonElement>[] responses)
    {
        Engine.RunUntilIdle();
        await Task.WhenAll(responses).WaitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>Waits, a bounded while, for a condition another thread makes true.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(5);
        }
    }
}
