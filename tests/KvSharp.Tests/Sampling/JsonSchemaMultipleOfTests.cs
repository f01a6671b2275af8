using System.Globalization;
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
/// multipleOf is held to exactly, with the bounds beside it: a number is Complete exactly where it is a multiple
/// within them, and a start is Partial exactly where some multiple within them begins so.
/// </summary>
public class JsonSchemaMultipleOfTests
{
    private static JsonSchemaPrefix Schema(string json) => JsonSchemaPrefix.For(JsonDocument.Parse(json).RootElement);

    /// <summary>A number schema as an object's one property, so a number's end is told by what follows it.</summary>
    private static JsonSchemaPrefix Property(string schema) => Schema("{\"type\": \"object\", \"properties\": {\"n\": " + schema + "}, \"required\": [\"n\"]}");

    private static JsonPrefixStatus Check(JsonSchemaPrefix schema, string value) => schema.Check(Encoding.UTF8.GetBytes("{\"n\": " + value));

    [Theory]
    [InlineData("14}", JsonPrefixStatus.Complete)]
    [InlineData("15}", JsonPrefixStatus.Invalid)]
    [InlineData("1", JsonPrefixStatus.Partial)]      // 14
    [InlineData("15", JsonPrefixStatus.Partial)]     // 154 = 7 * 22
    [InlineData("-21}", JsonPrefixStatus.Complete)]
    [InlineData("-22}", JsonPrefixStatus.Invalid)]
    [InlineData("-", JsonPrefixStatus.Partial)]
    [InlineData("0}", JsonPrefixStatus.Complete)]
    [InlineData("-0}", JsonPrefixStatus.Complete)]
    [InlineData("14.0", JsonPrefixStatus.Invalid)]  // an integer has no point
    [InlineData("7e", JsonPrefixStatus.Invalid)]    // nor an exponent
    public void AnIntegerMultipleOfSeven(string value, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Property("{\"type\": \"integer\", \"multipleOf\": 7}"), value));

    [Theory]
    [InlineData("integer", "1", JsonPrefixStatus.Partial)]     // 14
    [InlineData("integer", "2", JsonPrefixStatus.Invalid)]     // 2 and 20 are no multiples, 21 and on are past 20
    [InlineData("integer", "14}", JsonPrefixStatus.Complete)]
    [InlineData("integer", "21", JsonPrefixStatus.Invalid)]
    [InlineData("integer", "-", JsonPrefixStatus.Invalid)]     // nothing below 3
    [InlineData("integer", "0", JsonPrefixStatus.Invalid)]
    [InlineData("integer", "7}", JsonPrefixStatus.Complete)]
    [InlineData("number", "2", JsonPrefixStatus.Invalid)]      // [2, 3) and [20, 30) hold no multiple at or below 20
    [InlineData("number", "7.", JsonPrefixStatus.Partial)]     // 7.0
    [InlineData("number", "7.0000}", JsonPrefixStatus.Complete)]
    [InlineData("number", "7.01", JsonPrefixStatus.Invalid)]
    [InlineData("number", "14.5", JsonPrefixStatus.Invalid)]
    public void WithBoundsAStartIsPartialOnlyWhereAMultipleWithinThemBeginsSo(string type, string value, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Property("{\"type\": \"" + type + "\", \"multipleOf\": 7, \"minimum\": 3, \"maximum\": 20}"), value));

    [Theory]
    [InlineData("1.23}", JsonPrefixStatus.Complete)]
    [InlineData("1.230}", JsonPrefixStatus.Complete)]
    [InlineData("1.2300000}", JsonPrefixStatus.Complete)]
    [InlineData("1.234", JsonPrefixStatus.Invalid)]
    [InlineData("1.2301", JsonPrefixStatus.Invalid)]
    [InlineData("0.001", JsonPrefixStatus.Invalid)]
    [InlineData("0.00", JsonPrefixStatus.Partial)]
    [InlineData("-0.05}", JsonPrefixStatus.Complete)]
    [InlineData("17}", JsonPrefixStatus.Complete)]
    [InlineData("1.2e1", JsonPrefixStatus.Invalid)]    // written without an exponent
    public void ANumberMultipleOfOneHundredth(string value, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Property("{\"type\": \"number\", \"multipleOf\": 0.01}"), value));

    [Theory]
    [InlineData("{\"type\": \"integer\", \"multipleOf\": 2.5}", "5}", JsonPrefixStatus.Complete)]   // an integer multiple of 2.5 is one of 5
    [InlineData("{\"type\": \"integer\", \"multipleOf\": 2.5}", "7}", JsonPrefixStatus.Invalid)]
    [InlineData("{\"type\": \"number\", \"multipleOf\": 2.5}", "7.5}", JsonPrefixStatus.Complete)]
    [InlineData("{\"type\": \"number\", \"multipleOf\": 2.5}", "7.2", JsonPrefixStatus.Invalid)]
    [InlineData("{\"type\": \"number\", \"multipleOf\": 1e2}", "300}", JsonPrefixStatus.Complete)]
    [InlineData("{\"type\": \"number\", \"multipleOf\": 1e2}", "350}", JsonPrefixStatus.Invalid)]
    [InlineData("{\"allOf\": [{\"type\": \"integer\", \"multipleOf\": 4}, {\"type\": \"integer\", \"multipleOf\": 6}]}", "12}", JsonPrefixStatus.Complete)]
    [InlineData("{\"allOf\": [{\"type\": \"integer\", \"multipleOf\": 4}, {\"type\": \"integer\", \"multipleOf\": 6}]}", "18}", JsonPrefixStatus.Invalid)]
    [InlineData("{\"allOf\": [{\"type\": \"integer\", \"multipleOf\": 4}, {\"type\": \"integer\", \"multipleOf\": 6}]}", "8}", JsonPrefixStatus.Invalid)]
    public void StepsThatAreNotWholeAndStepsMerged(string schema, string value, JsonPrefixStatus expected) =>
        Assert.Equal(expected, Check(Property(schema), value));

    [Fact]
    public void AnOpenEndStaysOpenOnlyWhereMoreDigitsStayWithinTheBound()
    {
        // Integers below 3 that are multiples of 0.5, that is all of them: "3" can only end as 3 (excluded) or 30 and on.
        var below = Property("{\"type\": \"integer\", \"multipleOf\": 0.5, \"exclusiveMaximum\": 3}");
        Assert.Equal(JsonPrefixStatus.Invalid, Check(below, "3"));
        Assert.Equal(JsonPrefixStatus.Partial, Check(below, "2"));
        Assert.Equal(JsonPrefixStatus.Partial, Check(below, "-3"));
        // Above 1000, multiples of 1000: "10001" is none, nor is any of 100010 to 100019 or 1000100 to 1000199, but 10001000 is
        var above = Property("{\"type\": \"integer\", \"multipleOf\": 1000, \"minimum\": 1000}");
        Assert.Equal(JsonPrefixStatus.Partial, Check(above, "10001"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(above, "10001}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(above, "-"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(above, "0"));
    }

    [Theory]
    [InlineData("{\"type\": \"integer\", \"multipleOf\": 0}", "schema.multipleOf must be a positive number")]
    [InlineData("{\"type\": \"number\", \"multipleOf\": -0.5}", "schema.multipleOf must be a positive number")]
    [InlineData("{\"type\": \"number\", \"multipleOf\": \"3\"}", "schema.multipleOf must be a number")]
    [InlineData("{\"type\": \"number\", \"multipleOf\": 1e-999}", "schema.multipleOf")]
    [InlineData("{\"type\": \"integer\", \"multipleOf\": 7, \"minimum\": 1, \"maximum\": 6}", "no integer within its bounds is a multiple of 7")]
    [InlineData("{\"type\": \"integer\", \"multipleOf\": 0.5, \"minimum\": 0.2, \"maximum\": 0.8}", "no integer within its bounds")]
    [InlineData("{\"multipleOf\": 3}", "needs a type")]
    public void AStepThatCannotBeHeldToIsRefusedByName(string schema, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => Schema(schema)).Message);

    private static readonly string[] Steps = ["1", "2", "3", "7", "10", "25", "0.5", "0.25", "0.2", "2.5", "0.01", "0.75"];

    /// <summary>
    /// Random steps and bounds (both finite, so what is allowed can be listed): a number's text is Complete exactly
    /// where it is one of the allowed values' writings (a multiple within the bounds, trailing zeros and "-0" included),
    /// and a start is Partial exactly where it begins such a writing, so every Partial start has a completion.
    /// </summary>
    [Fact]
    public void ATextIsCompleteExactlyOnAMultipleWithinTheBoundsAndPartialExactlyOnTheStartOfOne()
    {
        var cases = from integer in Gen.Elements(true, false)
                    from step in Gen.Elements(Steps)
                    from low in Gen.Choose(-50, 20)
                    from width in Gen.Choose(0, 30)
                    from lowHalf in Gen.Elements(0m, 0.5m)
                    from lowExclusive in Gen.Elements(true, false)
                    from highExclusive in Gen.Elements(true, false)
                    select (integer, step, low: low + lowHalf, high: (decimal)(low + width), lowExclusive, highExclusive);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            decimal step = decimal.Parse(c.step, CultureInfo.InvariantCulture);
            var values = new List<decimal>();
            for (decimal v = Math.Ceiling(c.low / step) * step; v <= c.high; v += step)
                if ((c.lowExclusive ? v > c.low : v >= c.low) && (c.highExclusive ? v < c.high : v <= c.high) && (!c.integer || v == Math.Floor(v))) values.Add(v);
            string json = $"{{\"type\": \"{(c.integer ? "integer" : "number")}\", \"multipleOf\": {c.step}, " +
                          $"\"{(c.lowExclusive ? "exclusiveMinimum" : "minimum")}\": {c.low.ToString(CultureInfo.InvariantCulture)}, " +
                          $"\"{(c.highExclusive ? "exclusiveMaximum" : "maximum")}\": {c.high.ToString(CultureInfo.InvariantCulture)}}}";
            if (values.Count == 0) return Assert.Throws<ArgumentException>(() => Property(json)) != null;
            var schema = Property(json);
            var writings = new HashSet<string>(StringComparer.Ordinal);
            foreach (decimal v in values)
                for (int digits = 0; digits <= (c.integer ? 0 : 4); digits++)
                {
                    string text = v.ToString("F" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
                    if (decimal.Parse(text, CultureInfo.InvariantCulture) != v) continue;
                    writings.Add(text);
                    if (v == 0) writings.Add("-" + text);
                }
            var starts = new HashSet<string>(writings.SelectMany(w => Enumerable.Range(1, w.Length).Select(n => w[..n])), StringComparer.Ordinal);
            string[] fractions = ["", ".", ".0", ".5", ".25", ".01", ".1", ".50", ".250", ".333", ".07", ".75", ".750", ".001"];
            foreach (string sign in new[] { "", "-" })
                for (int whole = 0; whole < 120; whole++)
                    foreach (string fraction in fractions)
                    {
                        string number = sign + whole.ToString(CultureInfo.InvariantCulture) + fraction;
                        if (Check(schema, number) == JsonPrefixStatus.Partial != starts.Contains(number))
                            throw new Xunit.Sdk.XunitException($"{json}: '{number}' should be {(starts.Contains(number) ? "Partial" : "Invalid")}");
                        if (Check(schema, number + "}") == JsonPrefixStatus.Complete != writings.Contains(number))
                            throw new Xunit.Sdk.XunitException($"{json}: '{number}' should {(writings.Contains(number) ? "" : "not ")}be Complete");
                    }
            if ((Check(schema, "-") == JsonPrefixStatus.Partial) != starts.Contains("-")) throw new Xunit.Sdk.XunitException($"{json}: '-'");
            return true;
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true));
    }

    /// <summary>A reply held to a schema of merged objects, multiples and bounds (every value of bounded length) parses and keeps them all.</summary>
    [Fact]
    public async Task AGenerationHeldToAllOfAndMultipleOfEndsInAValueThatMeetsThem()
    {
        const string json = """
            {"$defs": {"Base": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}},
             "allOf": [{"$ref": "#/$defs/Base"}, {"properties": {"count": {"type": "integer", "multipleOf": 7, "minimum": -30, "maximum": 70}}, "required": ["count"]}],
             "properties": {"cents": {"type": "integer", "multipleOf": 0.25, "exclusiveMinimum": 0, "maximum": 99}}, "required": ["cents"], "description": "an order"}
            """;
        var schemaElement = JsonDocument.Parse(json).RootElement;
        var schema = JsonSchemaPrefix.For(schemaElement);
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var client = new KvSharpChatClient(model, new KvSharpChatClientOptions { Session = new SessionOptions { ContextLength = 512 } });
        foreach (int seed in new[] { 1, 2, 3 })
        {
            var options = new ChatOptions { MaxOutputTokens = 480, Temperature = 0.8f, Seed = seed, ResponseFormat = ChatResponseFormat.ForJsonSchema(schemaElement, "order") };
            var response = await client.GetResponseAsync("Once upon a time", options, TestContext.Current.CancellationToken);
            Assert.True(response.FinishReason == ChatFinishReason.Stop, $"{response.FinishReason}: {JsonSerializer.Serialize(response.Text)}");
            Assert.Equal(JsonPrefixStatus.Complete, schema.Check(Encoding.UTF8.GetBytes(response.Text)));
            using var reply = JsonDocument.Parse(response.Text);
            var root = reply.RootElement;
            Assert.Equal(["cents", "count", "ok"], root.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
            Assert.True(root.GetProperty("ok").ValueKind is JsonValueKind.True or JsonValueKind.False, response.Text);
            int count = root.GetProperty("count").GetInt32(), cents = root.GetProperty("cents").GetInt32();
            Assert.True(count % 7 == 0 && count is >= -30 and <= 70, response.Text);
            Assert.True(cents is > 0 and <= 99, response.Text);
        }
    }
}
