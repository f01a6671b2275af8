using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Sampling;

/// <summary>
/// JsonPrefix accepts exactly the byte strings that begin a JSON text (System.Text.Json is the judge of complete
/// ones), and a generation in JSON mode only ever writes such a prefix, stopping when the object closes.
/// </summary>
public class JsonPrefixTests
{
    private static (bool Accepted, bool Complete) Read(string text, bool objectOnly = false)
    {
        var json = new JsonPrefix(objectOnly);
        bool accepted = json.Feed(Encoding.UTF8.GetBytes(text));
        return (accepted, json.IsComplete);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"a\": 1, \"b\": [true, false, null, -0.5e+3, \"x\\u00e9\\n\"], \"c\": {\"d\": []}}")]
    [InlineData("[1, 2.25, -3E2, \"é\", {\"k\": \"v\"}]")]
    [InlineData("\"just a string\"")]
    [InlineData(" \n {\"spaced\" :\t[ ] } ")]
    public void AWholeDocumentIsCompleteAndEveryShorterPrefixIsNot(string text)
    {
        Assert.Equal((true, true), Read(text));
        var bytes = Encoding.UTF8.GetBytes(text.TrimEnd());
        for (int n = 0; n < bytes.Length; n++)
        {
            var json = new JsonPrefix(objectOnly: false);
            Assert.True(json.Feed(bytes.AsSpan(0, n)), $"prefix of {n} bytes");
            Assert.False(json.IsComplete, $"prefix of {n} bytes is complete");
        }
    }

    [Theory]
    [InlineData("{\"a\":}")]
    [InlineData("{\"a\" 1}")]
    [InlineData("[1,]")]
    [InlineData("01")]
    [InlineData("{'a': 1}")]
    [InlineData("\"\u0001\"")]
    [InlineData("tru e")]
    [InlineData("1.}")]
    [InlineData("{\"a\": 1}}")]
    [InlineData("{\"a\": 1]")]
    [InlineData("\"\\x\"")]
    [InlineData("{1: 2}")]
    public void WhatNoJsonTextBeginsWithIsRefused(string text) => Assert.False(Read(text).Accepted);

    [Fact]
    public void ObjectModeTakesOnlyAnObjectAndCapsWhitespace()
    {
        Assert.False(Read("[1]", objectOnly: true).Accepted);
        Assert.False(Read("\"s\"", objectOnly: true).Accepted);
        Assert.Equal((true, true), Read("{\"a\": [1]}", objectOnly: true));
        Assert.True(Read("{" + new string(' ', JsonPrefix.MaxWhitespace), objectOnly: true).Accepted);
        Assert.False(Read("{" + new string(' ', JsonPrefix.MaxWhitespace + 1), objectOnly: true).Accepted);
    }

    /// <summary>Random strings over JSON's own characters: accepted whole and complete exactly when System.Text.Json parses them.</summary>
    [Fact]
    public void AgreesWithSystemTextJsonOnRandomText()
    {
        const string alphabet = "{}[]\":,0123456789.eE+- tfnrul\\ax";
        var texts = Gen.Choose(1, 14).SelectMany(n => Gen.ArrayOf(Gen.Elements(alphabet.ToCharArray()), n)).Select(c => new string(c));
        // Short random strings rarely parse: valid ones are mixed in, mutated by one character.
        var valid = Gen.Elements("{\"a\":1}", "[true,null]", "\"x\"", "-1.5e3", "{\"k\":[1,{\"z\":\"\\n\"}]}", "0", "[]");
        var mutated = valid.SelectMany(v => Gen.Choose(0, v.Length - 1).SelectMany(i => Gen.Elements(alphabet.ToCharArray()).Select(c => v[..i] + c + v[(i + 1)..])));
        Prop.ForAll(Gen.OneOf(texts, valid, mutated).ToArbitrary(), text =>
        {
            bool parses;
            try
            {
                using var _ = JsonDocument.Parse(text);
                parses = true;
            }
            catch (JsonException) { parses = false; }
            var (accepted, complete) = Read(text);
            return parses == (accepted && complete);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(3000).WithQuietOnSuccess(true));
    }

    [Theory]
    [InlineData(0.0f, 0ul)]
    [InlineData(1.0f, 3ul)]
    [InlineData(0.8f, 5ul)]
    public void AGenerationInJsonModeWritesOnlyAPrefixOfAnObject(float temperature, ulong seed)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var session = model.CreateSession(new SessionOptions { ContextLength = 512 });
        var options = new GenerationOptions
        {
            MaxTokens = 120, Format = ResponseFormat.JsonObject, Sampling = new SamplingOptions { Temperature = temperature, Seed = seed },
        };
        string text = string.Concat(session.Generate("Once upon a time", options));
        var (accepted, complete) = Read(text, objectOnly: true);
        Assert.True(accepted, text);
        Assert.Contains("{", text);
        // Either the budget ran out mid-object, or the object closed and generation stopped right there.
        if (session.LastStats!.FinishReason == FinishReason.Stop)
        {
            Assert.True(complete);
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text).RootElement.ValueKind);
        }
        else Assert.Equal((FinishReason.Length, 120), (session.LastStats.FinishReason, session.LastStats.GeneratedTokens));
    }
}
