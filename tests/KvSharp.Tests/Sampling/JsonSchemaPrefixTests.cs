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
    [InlineData("{\"type\": \"string\", \"pattern\": \"^(a)\\\\1\"}", "backreference")]
    [InlineData("{\"type\": \"object\", \"not\": {\"required\": [\"a\"]}}", "not")]
    [InlineData("{\"oneOf\": [{\"type\": \"string\"}]}", "oneOf")]
    [InlineData("{\"oneOf\": [{\"type\": \"object\", \"properties\": {\"k\": {\"const\": \"a\"}}, \"required\": [\"k\"]}, {\"type\": \"object\", \"properties\": {\"k\": {\"const\": \"a\"}}, \"required\": [\"k\"]}]}", "oneOf")]
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
    /// What a caller may skip reading the text again for: inside a free string any continuation of whole UTF-8
    /// characters without a quote, backslash or control byte stays Partial (a piece that is not whole is read in full); inside a property name or enum value, exactly those the rests start with
    /// (byte by byte, so a name's character split across tokens still counts, and a stray byte does not).
    /// </summary>
    [Fact]
    public void TheFastAnswersAreTheFullChecksAnswers()
    {
        var schema = Schema("{\"type\": \"object\", \"properties\": {\"größe\": {\"type\": \"integer\"}, \"story\": {\"type\": \"string\"}, " +
                            "\"tone\": {\"enum\": [\"calm\", \"café\"]}}, \"required\": [\"story\"]}");
        byte[][] pieces = [.. new[] { "a", "st", "story", "gr", "grö", "c", "ca", "caf", "café", "x", " ", "ö", "ory" }.Select(Encoding.UTF8.GetBytes),
            [0xC3], [0xC3, 0xB6], [0x80], [0xE9]];
        // A free string that ends inside a character is not free: its next byte must continue the character.
        Assert.Equal(JsonPrefixStatus.Partial, schema.Check([.. "{\"story\": \"x"u8, 0xC3], out bool midCharacter, out _));
        Assert.False(midCharacter);
        foreach (string prefix in new[] { "{\"", "{\"st", "{\"gr", "{\"gr\u00f6", "{\"story\": \"x", "{\"story\": \"\", \"tone\": \"ca", "{\"tone\": \"" })
        {
            var text = Encoding.UTF8.GetBytes(prefix);
            Assert.Equal(JsonPrefixStatus.Partial, schema.Check(text, out bool free, out var rests));
            Assert.True(free || rests != null, prefix);
            foreach (var piece in pieces)
            {
                if (free && !System.Text.Unicode.Utf8.IsValid(piece)) continue;
                bool full = schema.Check([.. text, .. piece]) != JsonPrefixStatus.Invalid;
                bool fast = free || rests!.Any(r => r.AsSpan().StartsWith(piece));
                Assert.True(full == fast, $"[{prefix}] + {Convert.ToHexString(piece)}: full {full}, fast {fast}");
            }
        }
    }

    /// <summary>A long: an unbounded JSON integer (what .NET's schema says for any integer type) fits one in 16 digits.</summary>
    public sealed record Answer(bool Ok, long Count);

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

    public sealed record Booking(DateOnly Day, Guid Id, [property: System.ComponentModel.DataAnnotations.Range(1, 9)] int Guests);

    [Fact]
    public async Task GetResponseAsyncOfARecordWithDatesIdsAndBoundsAlwaysEndsInOne()
    {
        // Every value here has a bounded length, and so has whitespace, so the reply must close within the room it has
        // (the file's metadata says 128 tokens of context; the model was trained at 512).
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var client = new KvSharpChatClient(model, new KvSharpChatClientOptions { Session = new SessionOptions { ContextLength = 512 } });
        var schema = ChatResponseFormat.ForJsonSchema<Booking>().Schema!.Value;
        Assert.Contains("\"maximum\"", schema.GetRawText());
        foreach (int seed in new[] { 1, 2, 3 })
        {
            var options = new ChatOptions { MaxOutputTokens = 480, Temperature = 0.8f, Seed = seed };
            var response = await client.GetResponseAsync<Booking>("Once upon a time", options, cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(response.FinishReason == ChatFinishReason.Stop, $"{response.FinishReason}: {JsonSerializer.Serialize(response.Text)}");
            Assert.True(response.TryGetResult(out var booking), response.Text);
            Assert.InRange(booking!.Guests, 1, 9);
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

    public sealed record Chain(string Value, Chain? Next);

    [Fact]
    public void ARecursiveTypeReadsThroughItsReferences()
    {
        // System.Text.Json points a recursive property back at its first occurrence: {"$ref": "#/properties/next"}.
        var schema = ChatResponseFormat.ForJsonSchema<Chain>().Schema!.Value;
        Assert.Contains("$ref", schema.GetRawText());
        var chain = JsonSchemaPrefix.For(schema);
        Assert.Equal(JsonPrefixStatus.Complete, Check(chain, "{\"value\": \"a\", \"next\": {\"value\": \"b\", \"next\": {\"value\": \"c\", \"next\": null}}}"));
        Assert.Equal(JsonPrefixStatus.Partial, Check(chain, "{\"value\": \"a\", \"next\": {\"value\": \"b\", \"next\": {\"va"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(chain, "{\"value\": \"a\", \"next\": {\"value\": \"b\", \"next\": {\"value\": 3"));
        var defs = Schema("{\"$defs\": {\"Point\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\"}}, \"required\": [\"x\"]}}, " +
                          "\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/Point\"}}");
        Assert.Equal(JsonPrefixStatus.Complete, Check(defs, "[{\"x\": 1}, {\"x\": 2}]"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(defs, "[{\"y\""));
    }

    [Theory]
    [InlineData("{\"$ref\": \"#\"}", "refers only to itself")]
    [InlineData("{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#/$defs/Missing\"}}}", "points at nothing")]
    [InlineData("{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"other.json#/x\"}}}", "point into the schema itself")]
    [InlineData("{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#\", \"type\": \"object\"}}}", "beside $ref")]
    [InlineData("{\"minimum\": 3}", "needs a type")]
    [InlineData("{\"type\": \"string\", \"minLength\": 3, \"maxLength\": 2}", "below minLength")]
    [InlineData("{\"type\": \"integer\", \"minimum\": 3, \"exclusiveMaximum\": 3}", "no number is within")]
    [InlineData("{\"type\": \"integer\", \"exclusiveMinimum\": 23, \"exclusiveMaximum\": 24}", "no integer is within")]
    [InlineData("{\"type\": \"integer\", \"minimum\": 0.2, \"maximum\": 0.8}", "no integer is within")]
    [InlineData("{\"type\": \"string\", \"pattern\": \"(?=a)\"}", "pattern")]
    public void WhatCannotBeHeldToIsNamed(string schema, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => Schema(schema)).Message);

    [Fact]
    public void AReferenceBackToItselfThroughAnyOfEndsInsteadOfRecursingForever()
    {
        var loop = Schema("{\"anyOf\": [{\"$ref\": \"#\"}, {\"type\": \"null\"}]}");
        Assert.Equal(JsonPrefixStatus.Complete, Check(loop, "null"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(loop, "1"));
    }

    [Theory]
    [InlineData("\"a\"", JsonPrefixStatus.Invalid)]     // too short, closed
    [InlineData("\"ab\"", JsonPrefixStatus.Complete)]
    [InlineData("\"abc", JsonPrefixStatus.Partial)]
    [InlineData("\"abcd", JsonPrefixStatus.Invalid)]     // too long already
    [InlineData("\"ab\\u00e9\"", JsonPrefixStatus.Complete)]
    [InlineData("\"abc\\", JsonPrefixStatus.Invalid)]  // an escape is a fourth character
    [InlineData("\"éé", JsonPrefixStatus.Partial)]      // characters, not bytes
    public void AStringsLengthIsCountedInCharacters(string text, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Schema("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}"), text));

    [Theory]
    [InlineData("[]", JsonPrefixStatus.Invalid)]
    [InlineData("[1]", JsonPrefixStatus.Complete)]
    [InlineData("[1, 2]", JsonPrefixStatus.Complete)]
    [InlineData("[1, 2,", JsonPrefixStatus.Invalid)]
    public void AnArraysLengthIsHeldToItsBounds(string text, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Schema("{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"minItems\": 1, \"maxItems\": 2}"), text));

    [Theory]
    [InlineData("{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10}")]
    [InlineData("{\"type\": \"integer\", \"minimum\": -5, \"maximum\": -2}")]
    [InlineData("{\"type\": \"integer\", \"exclusiveMinimum\": -13, \"exclusiveMaximum\": 127}")]
    [InlineData("{\"type\": \"integer\", \"minimum\": 40}")]
    [InlineData("{\"type\": \"integer\", \"maximum\": 0}")]
    public void AnIntegersStartIsAllowedExactlyWhereSomeIntegerInItsBoundsBeginsSo(string bounds)
    {
        var schema = Schema("{\"type\": \"object\", \"properties\": {\"n\": " + bounds + "}}");
        using var doc = JsonDocument.Parse(bounds);
        long low = doc.RootElement.TryGetProperty("minimum", out var m) ? m.GetInt64() : doc.RootElement.TryGetProperty("exclusiveMinimum", out var xm) ? xm.GetInt64() + 1 : -1000;
        long high = doc.RootElement.TryGetProperty("maximum", out var M) ? M.GetInt64() : doc.RootElement.TryGetProperty("exclusiveMaximum", out var xM) ? xM.GetInt64() - 1 : 1000;
        var allowed = Enumerable.Range(-1000, 2001).Where(n => n >= low && n <= high).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        foreach (string prefix in new[] { "-" }.Concat(Enumerable.Range(-200, 401).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture))))
        {
            // Within this range of magnitudes every open bound below 1000 decides it; beyond them the brute force stops.
            bool viable = allowed.Any(a => a.StartsWith(prefix, StringComparison.Ordinal)) || (high > 999 && !prefix.StartsWith('-') && prefix != "0") || (low < -999 && prefix.StartsWith('-') && prefix != "-0");
            Assert.True(viable == (Check(schema, "{\"n\": " + prefix) == JsonPrefixStatus.Partial), $"{bounds}: '{prefix}' should be {(viable ? "open" : "closed")}");
            Assert.Equal(allowed.Contains(prefix) && prefix != "-", Check(schema, "{\"n\": " + prefix + "}") == JsonPrefixStatus.Complete);
        }
    }

    [Theory]
    [InlineData("{\"x\": 0.", JsonPrefixStatus.Partial)]
    [InlineData("{\"x\": 0}", JsonPrefixStatus.Invalid)]       // exclusive
    [InlineData("{\"x\": 0.0001}", JsonPrefixStatus.Complete)]
    [InlineData("{\"x\": 1.0}", JsonPrefixStatus.Complete)]
    [InlineData("{\"x\": 1.00001", JsonPrefixStatus.Invalid)]
    [InlineData("{\"x\": 1.5", JsonPrefixStatus.Invalid)]
    [InlineData("{\"x\": 2", JsonPrefixStatus.Invalid)]
    [InlineData("{\"x\": -", JsonPrefixStatus.Invalid)]
    [InlineData("{\"x\": 0.5e", JsonPrefixStatus.Invalid)]     // no exponent where there are bounds
    public void ANumbersStartIsAllowedWhereItCanStillEndWithinItsBounds(string text, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Schema("{\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"number\", \"exclusiveMinimum\": 0, \"maximum\": 1}}}"), text));

    [Theory]
    [InlineData("date", "\"2024-02-29\"", JsonPrefixStatus.Complete)]
    [InlineData("date", "\"2023-02-29\"", JsonPrefixStatus.Invalid)]
    [InlineData("date", "\"2023-02-3", JsonPrefixStatus.Invalid)]       // no February has a day 3x
    [InlineData("date", "\"2023-04-3", JsonPrefixStatus.Partial)]
    [InlineData("date", "\"2023-13", JsonPrefixStatus.Invalid)]
    [InlineData("date", "\"2023-1", JsonPrefixStatus.Partial)]
    [InlineData("date", "\"0000", JsonPrefixStatus.Invalid)]
    [InlineData("date-time", "\"2024-05-06T07:08:09.123Z\"", JsonPrefixStatus.Complete)]
    [InlineData("date-time", "\"2024-05-06T07:08:09+02:00\"", JsonPrefixStatus.Complete)]
    [InlineData("date-time", "\"2024-05-06T25", JsonPrefixStatus.Invalid)]
    [InlineData("date-time", "\"2024-05-06 07", JsonPrefixStatus.Invalid)]
    [InlineData("time", "\"23:59:59.1234567\"", JsonPrefixStatus.Complete)]
    [InlineData("uuid", "\"0f8fad5b-d9cb-469f-a165-70867728950e\"", JsonPrefixStatus.Complete)]
    [InlineData("uuid", "\"0f8fad5b-d9cb-469f-a165-7086772895\"", JsonPrefixStatus.Invalid)]
    [InlineData("uuid", "\"0f8fad5g", JsonPrefixStatus.Invalid)]
    [InlineData("email", "\"ann@example.org\"", JsonPrefixStatus.Complete)]
    [InlineData("email", "\"ann@@", JsonPrefixStatus.Invalid)]
    [InlineData("ipv4", "\"192.168.0.256\"", JsonPrefixStatus.Invalid)]
    [InlineData("hostname", "\"any text\"", JsonPrefixStatus.Complete)]  // other formats are annotations
    public void TheFormatsDotNetTypesUseAreHeldTo(string format, string text, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Schema("{\"type\": \"string\", \"format\": \"" + format + "\"}"), text));

    public sealed record Appointment(DateTime At, DateOnly Day, TimeOnly Time, Guid Id, TimeSpan Length, DateTimeOffset Booked);

    [Fact]
    public void AReplyHeldToADotNetTypesSchemaDeserializesToIt()
    {
        var schema = JsonSchemaPrefix.For(ChatResponseFormat.ForJsonSchema<Appointment>().Schema!.Value);
        var value = new Appointment(new DateTime(2024, 5, 6, 7, 8, 9, DateTimeKind.Utc), new DateOnly(2024, 2, 29), new TimeOnly(23, 59, 58),
            Guid.NewGuid(), TimeSpan.FromMinutes(90), new DateTimeOffset(2024, 5, 6, 7, 8, 9, TimeSpan.FromHours(2)));
        string json = JsonSerializer.Serialize(value, Microsoft.Extensions.AI.AIJsonUtilities.DefaultOptions);
        Assert.Equal(JsonPrefixStatus.Complete, Check(schema, json));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(schema, json.Replace("2024-02-29", "2024-02-30", StringComparison.Ordinal)));
        Assert.Equal(value, JsonSerializer.Deserialize<Appointment>(json, Microsoft.Extensions.AI.AIJsonUtilities.DefaultOptions));
    }

    [Theory]
    [InlineData("\"ab\\u00", JsonPrefixStatus.Partial)]   // U+0000 to U+00FF holds a to z
    [InlineData("\"ab\\u01", JsonPrefixStatus.Invalid)]   // U+0100 to U+01FF holds none
    [InlineData("\"ab\\", JsonPrefixStatus.Partial)]
    [InlineData("\"ab\xC3", JsonPrefixStatus.Invalid)]     // the first byte of U+00C0 to U+00FF
    [InlineData("\"ab\xE0", JsonPrefixStatus.Invalid)]     // U+0800 to U+0FFF (not U+0000: that would be overlong)
    [InlineData("\"ab\xE0\\", JsonPrefixStatus.Invalid)] // a sequence cut off by an escape
    public void ACharacterNotYetWholeIsAnyItCanStillBecome(string text, JsonPrefixStatus expected)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        Assert.Equal(expected, Schema("{\"type\": \"string\", \"pattern\": \"^[a-z]+$\"}").Check(bytes));
        // With é among the characters the same cut-off byte may still become it.
        Assert.Equal(JsonPrefixStatus.Partial, Schema("{\"type\": \"string\", \"pattern\": \"^[a-zé]+$\"}").Check(Encoding.Latin1.GetBytes("\"ab\xC3")));
    }

    [Theory]
    [InlineData(new byte[] { 0xC3, 0xA9 }, true)]                // é
    [InlineData(new byte[] { 0xE2, 0x80, 0x99 }, true)]          // ’
    [InlineData(new byte[] { 0xF0, 0x9F, 0x98, 0x80 }, true)]    // 😀
    [InlineData(new byte[] { 0xC3, (byte)'"' }, false)]          // a character cut off by the closing quote
    [InlineData(new byte[] { 0xE2, 0x80, (byte)'\\' }, false)]   // ... by an escape
    [InlineData(new byte[] { 0xC0, 0xAF }, false)]               // an overlong '/'
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 }, false)]         // a surrogate
    [InlineData(new byte[] { 0x80 }, false)]                     // a continuation byte alone
    [InlineData(new byte[] { 0xF5 }, false)]                     // past U+10FFFF
    public void StringsAreWellFormedUtf8InJsonModeAndUnderASchema(byte[] inString, bool allowed)
    {
        byte[] text = [.. "{\"a\": \""u8, .. inString];
        var json = new JsonPrefix(objectOnly: true);
        Assert.Equal(allowed, json.Feed(text));
        Assert.Equal(allowed, Schema("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}").Check(text) != JsonPrefixStatus.Invalid);
    }

    [Fact]
    public void ATaggedUnionsOneOfIsHeldToOneBranch()
    {
        // As Pydantic writes a discriminated union: branches behind references, each with its own constant tag.
        var pets = Schema("""
            {"$defs": {"Cat": {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}}, "required": ["kind", "lives"]},
                       "Dog": {"type": "object", "properties": {"kind": {"enum": ["dog"]}, "good": {"type": "boolean"}}, "required": ["kind", "good"]}},
             "type": "object", "properties": {"pet": {"oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}], "discriminator": {"propertyName": "kind"}}},
             "required": ["pet"]}
            """);
        Assert.Equal(JsonPrefixStatus.Complete, Check(pets, "{\"pet\": {\"kind\": \"cat\", \"lives\": 9}}"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(pets, "{\"pet\": {\"kind\": \"dog\", \"good\": true}}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(pets, "{\"pet\": {\"kind\": \"cat\", \"good\""));
    }

    [Fact]
    public void InsideAStringHeldToRulesTheStringsOwnAnswerIsTheFullChecks()
    {
        var schema = Schema("""
            {"type": "object", "properties": {"day": {"type": "string", "format": "date"}, "code": {"type": "string", "pattern": "^[A-Z]{2}\\d{3}$"},
             "name": {"type": "string", "maxLength": 5}, "either": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "integer"}]}}}
            """);
        byte[][] pieces = [.. new[] { "2", "20", "2024-", "-0", "1", "13", "A", "AB", "AB1", "ab", "9", "é", "名前", "xyz", "abcdef", "0f8f", "g" }.Select(Encoding.UTF8.GetBytes),
            [0xC3], [0xE5, 0x90], [0x80], [0xE0, 0x80]];
        foreach (string prefix in new[] { "{\"day\": \"", "{\"day\": \"2024-0", "{\"day\": \"2023-02-", "{\"code\": \"A", "{\"name\": \"ab", "{\"name\": \"abc\xC3",
                                          "{\"either\": \"0f" })
        {
            var text = Encoding.Latin1.GetBytes(prefix);
            Assert.Equal(JsonPrefixStatus.Partial, schema.Check(text, out _, out _, out var inRuleString));
            Assert.True(inRuleString != null, prefix);
            foreach (var piece in pieces)
            {
                bool full = schema.Check([.. text, .. piece]) != JsonPrefixStatus.Invalid;
                Assert.True(full == inRuleString!.Allows(piece), $"[{prefix}] + {Convert.ToHexString(piece)}: full {full}");
            }
        }
        // Inside an escape, or where two options are still open, there is no such answer: read in full.
        Assert.Equal(JsonPrefixStatus.Partial, schema.Check("{\"day\": \"2024\\u00"u8, out _, out _, out var inEscape));
        Assert.Null(inEscape);
    }

    [Fact]
    public void AnEnumsValuesMeetTheKeywordsBesideIt()
    {
        // maxLength beside an enum: "abc" is named but too long, so only "ab" is a value.
        var schema = Schema("""{"enum": ["abc", "ab"], "maxLength": 2}""");
        Assert.Equal(JsonPrefixStatus.Complete, Check(schema, "\"ab\""));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(schema, "\"abc"));
        // A const and an enum together: the values both name.
        var both = Schema("""{"enum": ["a", "b"], "const": "b"}""");
        Assert.Equal(JsonPrefixStatus.Invalid, Check(both, "\"a"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(both, "\"b\""));
        Assert.Equal(JsonPrefixStatus.Complete, Check(Schema("""{"enum": ["x1", "yy"], "type": ["string", "null"], "pattern": "^[a-z]\\d$"}"""), "\"x1\""));
        // Nothing left: refused by name, never a reply with no way to end.
        Assert.Contains("schema: no value can satisfy it", Assert.Throws<ArgumentException>(() => Schema("""{"const": "abc", "type": "integer"}""")).Message);
        Assert.Contains("no value can satisfy it", Assert.Throws<ArgumentException>(() => Schema("""{"enum": ["abc"], "pattern": "^\\d+$"}""")).Message);
    }

    [Fact]
    public void ARequiredPropertyAClosedObjectCannotHoldIsRefused()
    {
        Assert.Contains("schema.required names 'x', which is not among its properties",
            Assert.Throws<ArgumentException>(() => Schema("""{"type": "object", "additionalProperties": false, "required": ["x"]}""")).Message);
        // Open to any property, the required one is an additional property like any other.
        var open = Schema("""{"type": "object", "required": ["x"]}""");
        Assert.Equal(JsonPrefixStatus.Invalid, Check(open, "{}"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(open, "{\"x\": 1}"));
    }

    [Theory]
    [InlineData("{}", JsonPrefixStatus.Invalid)]
    [InlineData("{\"a\": 1}", JsonPrefixStatus.Invalid)]               // one property, two needed
    [InlineData("{\"a\": 1, ", JsonPrefixStatus.Partial)]
    [InlineData("{\"a\": 1, \"b\": 2}", JsonPrefixStatus.Complete)]
    [InlineData("{\"a\": 1, \"b\": 2,", JsonPrefixStatus.Invalid)]    // a third would be over maxProperties
    [InlineData("{\"b\": 1}", JsonPrefixStatus.Invalid)]
    [InlineData("{\"b\": 1, \"c\"", JsonPrefixStatus.Invalid)]        // the one place left is the required a's
    [InlineData("{\"b\": 1, \"", JsonPrefixStatus.Partial)]
    [InlineData("{\"b\": 1, \"a\": 2}", JsonPrefixStatus.Complete)]
    public void AnObjectsPropertyCountIsHeldToItsBoundsAndLeavesRoomForWhatIsRequired(string text, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Schema("""
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}},
             "required": ["a"], "minProperties": 2, "maxProperties": 2}
            """), text));

    [Fact]
    public void AnOpenObjectsCountsHoldToo()
    {
        // Open to any property: with one place, it is the required x's; without a listed property, min counts any.
        var one = Schema("""{"type": "object", "required": ["x"], "maxProperties": 1}""");
        Assert.Equal(JsonPrefixStatus.Invalid, Check(one, "{\"y\""));
        Assert.Equal(JsonPrefixStatus.Partial, Check(one, "{\"x"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(one, "{\"x\": [1]}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(one, "{\"x\": 1,"));
        var two = Schema("""{"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 2}""");
        Assert.Equal(JsonPrefixStatus.Invalid, Check(two, "{\"p\": \"q\"}"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(two, "{\"p\": \"q\", \"r\": \"s\"}"));
        // allOf tightens both counts.
        var merged = Schema("""{"allOf": [{"type": "object", "minProperties": 1, "maxProperties": 3}, {"type": "object", "maxProperties": 1}]}""");
        Assert.Equal(JsonPrefixStatus.Invalid, Check(merged, "{}"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(merged, "{\"k\": 1}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(merged, "{\"k\": 1,"));
    }

    [Theory]
    [InlineData("""{"type": "object", "minProperties": 3, "maxProperties": 2}""", "minProperties 3 is above maxProperties 2")]
    [InlineData("""{"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"], "maxProperties": 1}""", "2 properties are required and maxProperties is 1")]
    [InlineData("""{"type": "object", "properties": {"a": {}}, "additionalProperties": false, "minProperties": 2}""", "can hold only its 1 listed properties")]
    [InlineData("""{"type": "object", "minProperties": -1}""", "minProperties must be a non-negative integer")]
    public void CountsNoObjectCanMeetAreRefused(string schema, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => Schema(schema)).Message);

    /// <summary>
    /// Random walks over the pieces a reply could be made of: every text the checker calls Partial has a continuation it
    /// calls Complete (found by a bounded search), and every Complete text is JSON with the required properties and a
    /// property count within the bounds, checked by reading it with System.Text.Json.
    /// </summary>
    [Theory]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}, "required": ["c"], "minProperties": 2, "maxProperties": 2}""")]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "additionalProperties": {"type": "integer"}, "required": ["b"], "minProperties": 1, "maxProperties": 2}""")]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}, "minProperties": 3}""")]
    public void EveryPartialObjectCanStillBeCompletedAndEveryCompleteOneMeetsItsCounts(string json)
    {
        var schema = Schema(json);
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        int least = root.TryGetProperty("minProperties", out var mn) ? mn.GetInt32() : 0;
        int most = root.TryGetProperty("maxProperties", out var mx) ? mx.GetInt32() : int.MaxValue;
        string[] required = root.TryGetProperty("required", out var req) ? [.. req.EnumerateArray().Select(x => x.GetString()!)] : [];
        string[] pieces = ["{", "}", ", ", ": ", "\"a\"", "\"b\"", "\"c\"", "\"d\"", "1"];
        var rng = new Random(7);
        int partials = 0, completes = 0;
        for (int walk = 0; walk < 300; walk++)
        {
            string text = "";
            for (int step = 0; step < 14; step++)
            {
                var next = pieces.Select(p => text + p).Where(t => Check(schema, t) != JsonPrefixStatus.Invalid).ToList();
                if (next.Count == 0) break;
                text = next[rng.Next(next.Count)];
                var status = Check(schema, text);
                if (status == JsonPrefixStatus.Partial)
                {
                    partials++;
                    Assert.True(Completes(schema, text, pieces, 12), $"{text} is Partial but nothing completes it");
                }
                else
                {
                    completes++;
                    using var value = JsonDocument.Parse(text);
                    var names = value.RootElement.EnumerateObject().Select(p => p.Name).ToList();
                    Assert.True(names.Count >= least && names.Count <= most && required.All(names.Contains), $"{text} is Complete but breaks the counts or the required names");
                    break;
                }
            }
        }
        Assert.True(partials > 100 && completes > 50, $"{partials} partial and {completes} complete texts: the walks must reach both");
    }

    private static bool Completes(JsonSchemaPrefix schema, string text, string[] pieces, int depth)
    {
        if (depth == 0) return false;
        foreach (var p in pieces)
        {
            var status = Check(schema, text + p);
            if (status == JsonPrefixStatus.Complete || (status == JsonPrefixStatus.Partial && Completes(schema, text + p, pieces, depth - 1))) return true;
        }
        return false;
    }
}
