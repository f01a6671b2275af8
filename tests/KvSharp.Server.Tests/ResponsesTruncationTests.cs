using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>
/// The Responses API's truncation "auto": a conversation continued past the context drops its oldest turns until it fits,
/// replies as the kept turns alone would, and is stored as the model saw it; "disabled" (the default) refuses it by
/// name; an input that does not fit by itself is refused either way.
/// </summary>
public class ResponsesTruncationTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Instructions = "You tell stories.";

    private Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(JsonObject body) =>
        server.PostAsync("/v1/responses", body, TestContext.Current.CancellationToken);

    /// <summary>A user message of about <paramref name="words"/> words (stories260K reads a word as one to three tokens).</summary>
    private static string Story(int words, int seed)
    {
        string[] vocabulary = ["the", "little", "girl", "saw", "a", "big", "red", "ball", "in", "park", "and", "she", "was", "happy", "dog", "ran", "home"];
        var rng = new Random(seed);
        return string.Join(' ', Enumerable.Range(0, words).Select(_ => vocabulary[rng.Next(vocabulary.Length)]));
    }

    private static JsonObject Turn(string input, string? previous, string? truncation) => new()
    {
        ["input"] = input, ["instructions"] = Instructions, ["max_output_tokens"] = 8, ["temperature"] = 0,
        ["previous_response_id"] = previous, ["truncation"] = truncation,
    };

    [Fact]
    public async Task AutoDropsTheOldestTurnsAndRepliesAsTheKeptTurnsAlone()
    {
        string first = Story(120, 1), second = Story(120, 2), third = Story(120, 3);
        var (s1, r1) = await PostAsync(Turn(first, null, null));
        Assert.Equal(HttpStatusCode.OK, s1);
        var (s2, r2) = await PostAsync(Turn(second, r1.GetProperty("id").GetString(), "auto"));
        Assert.Equal(HttpStatusCode.OK, s2);
        int twoTurns = r2.GetProperty("usage").GetProperty("input_tokens").GetInt32();

        // The third turn does not fit with both before it: refused by default, naming the field that would let it.
        string previous = r2.GetProperty("id").GetString()!;
        var (refused, error) = await PostAsync(Turn(third, previous, null));
        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.Equal("context_length_exceeded", error.GetProperty("error").GetProperty("code").GetString());

        // With "auto" the first turn goes, and the reply is what the second and third turns alone give.
        var (s3, r3) = await PostAsync(Turn(third, previous, "auto"));
        Assert.Equal(HttpStatusCode.OK, s3);
        Assert.Equal("auto", r3.GetProperty("truncation").GetString());
        int kept = r3.GetProperty("usage").GetProperty("input_tokens").GetInt32();
        Assert.True(kept + 8 <= 512, $"{kept} input tokens and 8 to generate do not fit the 512-token context");
        var stateless = new JsonObject
        {
            ["input"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = second },
                new JsonObject { ["role"] = "assistant", ["content"] = ServerFixture.OutputText(r2) },
                new JsonObject { ["role"] = "user", ["content"] = third }),
            ["instructions"] = Instructions, ["max_output_tokens"] = 8, ["temperature"] = 0, ["store"] = false,
        };
        var (s4, alone) = await PostAsync(stateless);
        Assert.Equal(HttpStatusCode.OK, s4);
        Assert.Equal(ServerFixture.OutputText(alone), ServerFixture.OutputText(r3));
        Assert.Equal(alone.GetProperty("usage").GetProperty("input_tokens").GetInt32(), kept);
        Assert.True(kept < twoTurns + 120, "the first turn was not dropped");

        // Stored as the model saw it: the next turn starts from the kept turns, and its history is cached.
        var (s5, r5) = await PostAsync(Turn("What happened next?", r3.GetProperty("id").GetString(), "auto"));
        Assert.Equal(HttpStatusCode.OK, s5);
        Assert.True(r5.GetProperty("usage").GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32() >= kept,
            $"the truncated history ({kept} tokens) was not cached for the turn after it: {r5.GetProperty("usage")}");
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task AnInputThatCannotFitByItselfIsRefusedEvenWithAuto()
    {
        var (s1, r1) = await PostAsync(Turn(Story(60, 4), null, null));
        Assert.Equal(HttpStatusCode.OK, s1);
        var (status, error) = await PostAsync(Turn(Story(700, 5), r1.GetProperty("id").GetString(), "auto"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("context_length_exceeded", error.GetProperty("error").GetProperty("code").GetString());
        await server.WaitForNoBlocksAsync();
    }
}
