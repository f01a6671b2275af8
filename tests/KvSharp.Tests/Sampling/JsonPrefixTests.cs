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
    [InlineData(" {\"spaced\" :\n\t[ ] }\n")]
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
    public void ObjectModeTakesOnlyAnObject()
    {
        Assert.False(Read("[1]", objectOnly: true).Accepted);
        Assert.False(Read("\"s\"", objectOnly: true).Accepted);
        Assert.Equal((true, true), Read("{\"a\": [1]}", objectOnly: true));
    }

    /// <summary>Between two tokens: nothing, one space, or a newline and up to 20 spaces or tabs (llama.cpp's grammars' rule).</summary>
    [Theory]
    [InlineData("{ \"a\" : 1 }", true)]
    [InlineData("{\n\t\t\"a\": [\n    1,\n    2\n  ]\n}", true)]
    [InlineData(" {\"a\": 1}", true)]
    [InlineData("{\n                    \"a\": 1}", true)] // twenty spaces of indentation
    [InlineData("{\n                     \"a\": 1}", false)] // twenty-one
    [InlineData("{  \"a\": 1}", false)]
    [InlineData("{ \n\"a\": 1}", false)]
    [InlineData("{\n\n\"a\": 1}", false)]
    [InlineData("{\r\n\"a\": 1}", false)]
    [InlineData("{\t\"a\": 1}", false)]
    [InlineData("{\"a  b\":\"\\n  \"}", true)] // inside strings, anything
    public void WhitespaceBetweenTokensIsWhatLlamaCppsGrammarsAllow(string text, bool accepted)
    {
        Assert.Equal(accepted, Read(text, objectOnly: true).Accepted);
        Assert.Equal(accepted, JsonSchemaPrefix.For(JsonDocument.Parse("{}").RootElement).Check(Encoding.UTF8.GetBytes(text)) != JsonPrefixStatus.Invalid);
    }

    /// <summary>A number's integer part, fraction and exponent each take at most 16 digits (llama.cpp's grammars' rule).</summary>
    [Theory]
    [InlineData("1234567890123456", true)]
    [InlineData("12345678901234567", false)]
    [InlineData("-1234567890123456.1234567890123456e1234567890123456", true)]
    [InlineData("1.12345678901234567", false)]
    [InlineData("1e+12345678901234567", false)]
    public void ANumbersPartsTakeAtMostSixteenDigits(string number, bool accepted)
    {
        Assert.Equal(accepted, Read("[" + number + "]").Accepted);
        var schema = JsonSchemaPrefix.For(JsonDocument.Parse("""{"type": "array", "items": {"type": "number"}}""").RootElement);
        Assert.Equal(accepted, schema.Check(Encoding.UTF8.GetBytes("[" + number + "]")) != JsonPrefixStatus.Invalid);
    }

    /// <summary>Whether every whitespace run outside strings is one <see cref="WhitespaceBetweenTokensIsWhatLlamaCppsGrammarsAllow"/> takes.</summary>
    private static bool RunsAllowed(string text)
    {
        bool inString = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (inString)
            {
                if (c == '\\') i++;
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') inString = true;
            if (c is not (' ' or '\t' or '\n' or '\r')) continue;
            int end = i;
            while (end < text.Length && text[end] is ' ' or '\t' or '\n' or '\r') end++;
            string run = text[i..end];
            if (!System.Text.RegularExpressions.Regex.IsMatch(run, "^( |\n[ \t]{0,20})$")) return false;
            i = end - 1;
        }
        return true;
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
            return (parses && RunsAllowed(text)) == (accepted && complete);
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
