using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using KvSharp.Engine;
using KvSharp.Extensions.AI;
using KvSharp.Sampling;
using Microsoft.Extensions.AI;

namespace KvSharp.Tests.Sampling;

/// <summary>
/// JsonSchemaPrefix holds a text to the values a schema allows, prefix by prefix (the schema Microsoft.Extensions.AI
/// writes for a record among them); what it does not enforce is refused by name; generation held to a schema writes
/// only such a prefix, and a whole reply deserializes.
/// </summary>
public class JsonSchemaPrefixTests
{
    public enum Color { Red, Green }

    public sealed record Person(string Name, int Age, string[] Pets, Color Favorite, double? Height);

    private static readonly JsonElement PersonSchema = ChatResponseFormat.ForJsonSchema<Person>().Schema!.Value;

    private static JsonPrefixStatus Check(JsonSchemaPrefix schema, string text) => schema.Check(Encoding.UTF8.GetBytes(text));

    private static JsonSchemaPrefix Schema(string json) => JsonSchemaPrefix.For(JsonDocument.Parse(json).RootElement);

    [Theory]
    [InlineData("{\"name\": \"Ann\", \"age\": 7, \"pets\": [\"cat\", \"dog\"], \"favorite\": \"Green\", \"height\": 1.25}")]
    [InlineData("{\"height\": null, \"favorite\": \"Red\", \"pets\": [], \"age\": -3, \"name\": \"\\u00e9\\n\"}")]
    public void AWholeValueIsCompleteAndEveryShorterPrefixPartial(string text)
    {
        var schema = JsonSchemaPrefix.For(PersonSchema);
        Assert.Equal(JsonPrefixStatus.Complete, Check(schema, text));
        for (int n = 0; n < text.Length; n++) Assert.Equal(JsonPrefixStatus.Partial, Check(schema, text[..n]));
    }

    [Theory]
    [InlineData("{\"x")]                                   // no such property
    [InlineData("{\"name\": 3")]                           // a number where a string goes
    [InlineData("{\"age\": 7.5")]                          // an integer property
    [InlineData("{\"favorite\": \"B")]                     // not the start of any enum value
    [InlineData("{\"favorite\": \"Re\"")]                  // an enum value's start, closed
    [InlineData("{\"name\": \"a\", \"name\"")]             // a property twice
    [InlineData("{\"name\": \"a\"}")]                      // required properties missing
    [InlineData("{\"pets\": [1")]                          // the items' type
    [InlineData("[")]                                      // not an object
    [InlineData("{\"height\": nul }")]
    public void WhatNoAllowedValueBeginsWithIsInvalid(string text) =>
        Assert.Equal(JsonPrefixStatus.Invalid, Check(JsonSchemaPrefix.For(PersonSchema), text));

    [Fact]
    public void PartialKeysAndEnumsAndNullableTypesArePartial()
    {
        var schema = JsonSchemaPrefix.For(PersonSchema);
        Assert.Equal(JsonPrefixStatus.Partial, Check(schema, "{\"na"));
        Assert.Equal(JsonPrefixStatus.Partial, Check(schema, "{\"favorite\": \"Gre"));
        Assert.Equal(JsonPrefixStatus.Partial, Check(schema, "{\"height\": nu"));
        Assert.Equal(JsonPrefixStatus.Partial, Check(schema, "{\"height\": 1e"));
    }

    [Fact]
    public void AdditionalPropertiesAndAnyOf()
    {
        var open = Schema("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}, \"additionalProperties\": {\"type\": \"boolean\"}}");
        Assert.Equal(JsonPrefixStatus.Complete, Check(open, "{\"a\": 1, \"b\": true}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(open, "{\"b\": 1"));
        var any = Schema("{\"type\": \"object\"}");
        Assert.Equal(JsonPrefixStatus.Complete, Check(any, "{\"k\": [1, {\"z\": null}], \"s\": \"t\"}"));
        var union = Schema("{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"array\", \"items\": {\"type\": \"number\"}}]}");
        Assert.Equal(JsonPrefixStatus.Complete, Check(union, "[1, 2.5]"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(union, "\"x\""));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(union, "{"));
    }

    [Theory]
    [InlineData("{\"type\": \"string\", \"pattern\": \"^a\"}", "pattern")]
    [InlineData("{\"type\": \"integer\", \"minimum\": 0}", "minimum")]
    [InlineData("{\"$ref\": \"#/$defs/x\"}", "$ref")]
    [InlineData("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"text\"}}}", "'text'")]
    [InlineData("{\"enum\": [1, 2]}", "enum[0]")]
    public void WhatItDoesNotEnforceIsRefusedByName(string schema, string named) =>
        Assert.Contains(named, Assert.Throws<ArgumentException>(() => Schema(schema)).Message);

    /// <summary>Random people serialized as Microsoft.Extensions.AI would read them back: every one complete, every prefix partial.</summary>
    [Fact]
    public void EveryRandomPersonIsAllowedWholeAndPrefixByPrefix()
    {
        var schema = JsonSchemaPrefix.For(PersonSchema);
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };
        var people = from name in Gen.Elements("", "Ann", "Zoë \"Z\"", "a\\b\nc")
                     from age in Gen.Choose(-5, 200)
                     from pets in Gen.ArrayOf(Gen.Elements("cat", "dog", "🐟"))
                     from color in Gen.Elements(Color.Red, Color.Green)
                     from height in Gen.Elements<double?>(null, 0.5, 1e10, -2.25)
                     select new Person(name, age, pets, color, height);
        Prop.ForAll(people.ToArbitrary(), person =>
        {
            string text = JsonSerializer.Serialize(person, options);
            if (Check(schema, text) != JsonPrefixStatus.Complete) return false;
            var bytes = Encoding.UTF8.GetBytes(text);
            for (int n = 0; n < bytes.Length; n++)
                if (schema.Check(bytes.AsSpan(0, n)) != JsonPrefixStatus.Partial) return false;
            return true;
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200).WithQuietOnSuccess(true));
    }

    /// <summary>
    /// What a caller may skip reading the text again for: inside a free string any continuation without a quote,
    /// backslash or control byte stays Partial; inside a property name or enum value, exactly those the rests start with
    /// (byte by byte, so a name's character split across tokens still counts, and a stray byte does not).
    /// </summary>
    [Fact]
    public void TheFastAnswersAreTheFullChecksAnswers()
    {
        var schema = Schema("{\"type\": \"object\", \"properties\": {\"größe\": {\"type\": \"integer\"}, \"story\": {\"type\": \"string\"}, " +
                            "\"tone\": {\"enum\": [\"calm\", \"café\"]}}, \"required\": [\"story\"]}");
        byte[][] pieces = [.. new[] { "a", "st", "story", "gr", "grö", "c", "ca", "caf", "café", "x", " ", "ö", "ory" }.Select(Encoding.UTF8.GetBytes),
            [0xC3], [0xC3, 0xB6], [0x80], [0xE9]];
        foreach (string prefix in new[] { "{\"", "{\"st", "{\"gr", "{\"gr\u00f6", "{\"story\": \"x", "{\"story\": \"\", \"tone\": \"ca", "{\"tone\": \"" })
        {
            var text = Encoding.UTF8.GetBytes(prefix);
            Assert.Equal(JsonPrefixStatus.Partial, schema.Check(text, out bool free, out var rests));
            Assert.True(free || rests != null, prefix);
            foreach (var piece in pieces)
            {
                bool full = schema.Check([.. text, .. piece]) != JsonPrefixStatus.Invalid;
                bool fast = free || rests!.Any(r => r.AsSpan().StartsWith(piece));
                Assert.True(full == fast, $"[{prefix}] + {Convert.ToHexString(piece)}: full {full}, fast {fast}");
            }
        }
    }

    public sealed record Answer(bool Ok, int Count);

    [Fact]
    public async Task GetResponseAsyncOfARecordDeserializesTheConstrainedReply()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var client = new KvSharpChatClient(model);
        var options = new ChatOptions { MaxOutputTokens = 120, Temperature = 0.7f, Seed = 2 };
        var response = await client.GetResponseAsync<Answer>("Once upon a time", options, cancellationToken: TestContext.Current.CancellationToken);
        var schema = JsonSchemaPrefix.For(ChatResponseFormat.ForJsonSchema<Answer>().Schema!.Value);
        Assert.NotEqual(JsonPrefixStatus.Invalid, Check(schema, response.Text));
        if (response.FinishReason == ChatFinishReason.Stop)
        {
            Assert.Equal(JsonPrefixStatus.Complete, Check(schema, response.Text));
            Assert.True(response.TryGetResult(out var answer), response.Text);
            Assert.NotNull(answer);
        }
    }

    [Fact]
    public void ALeadIsReadExactlyThenItsSchema()
    {
        var constraint = JsonSchemaPrefix.ForLeads([
            ("get_weather\n", JsonDocument.Parse("{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}").RootElement, "a"),
            ("get_time\n", JsonDocument.Parse("{\"type\": \"object\", \"properties\": {\"zone\": {\"type\": \"string\"}}}").RootElement, "b")]);
        Assert.False(constraint.BeginsWithJson);
        Assert.True(Schema("{\"type\": \"object\"}").BeginsWithJson);
        foreach (string partial in new[] { "", "get_", "get_w", "get_time\n", "get_time\n {\"zo" }) Assert.Equal(JsonPrefixStatus.Partial, Check(constraint, partial));
        Assert.Equal(JsonPrefixStatus.Complete, Check(constraint, "get_weather\n{\"city\": \"Oslo\"}"));
        // No whitespace before a lead, no other lead, and the arguments of the tool named.
        foreach (string invalid in new[] { " get", "got", "get_weather{", "get_time\n{\"city\"" }) Assert.Equal(JsonPrefixStatus.Invalid, Check(constraint, invalid));
        Assert.Throws<ArgumentException>(() => JsonSchemaPrefix.ForLeads([]));
    }

    [Fact]
    public void AnyOfTellsWhatEveryOpenOptionTakesNotTheLastOnly()
    {
        var keys = Schema("{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"alpha\": {}}}, {\"type\": \"object\", \"properties\": {\"beta\": {}}}]}");
        Assert.Equal(JsonPrefixStatus.Partial, keys.Check("{\""u8, out bool free, out var rests));
        Assert.False(free);
        Assert.Equal(["alpha", "beta"], rests!.Select(r => Encoding.UTF8.GetString(r)).Order());
        // A free string among the options: any text continues it, whatever the enum allows.
        var mixed = Schema("{\"anyOf\": [{\"enum\": [\"x\"]}, {\"type\": \"string\"}]}");
        Assert.Equal(JsonPrefixStatus.Partial, mixed.Check("\""u8, out free, out rests));
        Assert.True(free);
        Assert.Null(rests);
        // An option open in a number: no string hint at all, so every continuation is read.
        var number = Schema("{\"anyOf\": [{\"enum\": [\"x\"]}, {\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"number\"}}}]}");
        Assert.Equal(JsonPrefixStatus.Partial, number.Check("{\"n\": 1"u8, out free, out rests));
        Assert.False(free);
        Assert.Null(rests);
    }

    [Theory]
    [InlineData("\"\\", JsonPrefixStatus.Partial)]
    [InlineData("\"\\u00", JsonPrefixStatus.Partial)]        // U+0043 'C' and U+0055 'U' start so
    [InlineData("\"\\u0043", JsonPrefixStatus.Partial)]
    [InlineData("\"\\u0043ET\"", JsonPrefixStatus.Complete)]
    [InlineData("\"\\ua7", JsonPrefixStatus.Invalid)]        // no value's next character is U+A7xx
    [InlineData("\"C\\u004", JsonPrefixStatus.Partial)]      // 'E' is U+0045
    [InlineData("\"C\\u005", JsonPrefixStatus.Invalid)]
    public void AnEscapeInAFixedStringIsPartialOnlyWhereItCanSpellOne(string text, JsonPrefixStatus expected)
    {
        Assert.Equal(expected, Check(Schema("{\"enum\": [\"CET\", \"UTC\"]}"), text));
        // Property names alike.
        var keyText = "{" + text;
        Assert.Equal(expected == JsonPrefixStatus.Complete ? JsonPrefixStatus.Partial : expected,
            Check(Schema("{\"type\": \"object\", \"properties\": {\"CET\": {}, \"UTC\": {}}}"), keyText));
    }
}
