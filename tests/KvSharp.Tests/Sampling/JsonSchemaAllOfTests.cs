using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using KvSharp.Sampling;

namespace KvSharp.Tests.Sampling;

/// <summary>
/// allOf is held to by merging its branches into one schema: a lone branch (Pydantic's described reference) is that
/// branch, objects' properties are united and each held to every branch's word on it, types intersected, bounds
/// tightened, enums intersected; what cannot be merged exactly is refused by name.
/// </summary>
public class JsonSchemaAllOfTests
{
    private static JsonSchemaPrefix Schema(string json) => JsonSchemaPrefix.For(JsonDocument.Parse(json).RootElement);

    private static JsonPrefixStatus Check(JsonSchemaPrefix schema, string text) => schema.Check(Encoding.UTF8.GetBytes(text));

    /// <summary>A schema as the one property of an object, so a number's end is told by what follows it.</summary>
    private static JsonSchemaPrefix Property(string schema) => Schema("{\"type\": \"object\", \"properties\": {\"v\": " + schema + "}, \"required\": [\"v\"]}");

    private static JsonPrefixStatus CheckProperty(JsonSchemaPrefix schema, string value) => Check(schema, "{\"v\": " + value);

    // As Pydantic v2 writes a model field whose type is a model and that has a description.
    private const string Pydantic = """
        {"$defs": {"Person": {"title": "Person", "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
                              "required": ["name", "age"]}},
         "title": "Pet", "type": "object",
         "properties": {"owner": {"allOf": [{"$ref": "#/$defs/Person"}], "description": "Who feeds it"},
                        "vet": {"anyOf": [{"$ref": "#/$defs/Person"}, {"type": "null"}], "default": null}},
         "required": ["owner"]}
        """;

    [Fact]
    public void PydanticsDescribedReferenceIsItsTarget()
    {
        var schema = Schema(Pydantic);
        string whole = "{\"owner\": {\"name\": \"Ann\", \"age\": 30}, \"vet\": null}";
        Assert.Equal(JsonPrefixStatus.Complete, Check(schema, whole));
        for (int n = 0; n < whole.Length; n++) Assert.Equal(JsonPrefixStatus.Partial, Check(schema, whole[..n]));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(schema, "{\"owner\": {\"name\": \"Ann\", \"age\": -1"));   // the target's bound
        Assert.Equal(JsonPrefixStatus.Invalid, Check(schema, "{\"owner\": {\"nick\""));                     // the target's properties
        Assert.Equal(JsonPrefixStatus.Invalid, Check(schema, "{\"owner\": {\"name\": \"Ann\"}"));           // the target's required
        Assert.Equal(JsonPrefixStatus.Invalid, Check(schema, "{\"owner\": \"Ann\""));
    }

    [Fact]
    public void ARecursiveModelBehindADescribedReferenceStaysACycle()
    {
        var list = Schema("""
            {"$defs": {"Node": {"type": "object", "properties": {"value": {"type": "integer"},
                                "next": {"allOf": [{"$ref": "#/$defs/Node"}], "description": "the rest"}}, "required": ["value"]}},
             "allOf": [{"$ref": "#/$defs/Node"}], "description": "a list"}
            """);
        Assert.Equal(JsonPrefixStatus.Complete, Check(list, "{\"value\": 1, \"next\": {\"value\": 2, \"next\": {\"value\": 3}}}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(list, "{\"value\": 1, \"next\": {\"value\": 2, \"next\": {\"value\": \"x\""));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(list, "{\"value\": 1, \"next\": {}"));
    }

    [Fact]
    public void ObjectBranchesUniteTheirPropertiesAndRequireWhatEitherRequires()
    {
        // As OpenAPI generators extend a base model: a reference and the keywords beside allOf are branches too.
        var extended = Schema("""
            {"$defs": {"Base": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 0}}, "required": ["id"]}},
             "allOf": [{"$ref": "#/$defs/Base"}, {"type": "object", "properties": {"id": {"type": "number", "maximum": 10}}}],
             "properties": {"name": {"type": "string"}}, "required": ["name"]}
            """);
        Assert.Equal(JsonPrefixStatus.Complete, Check(extended, "{\"id\": 3, \"name\": \"a\"}"));
        Assert.Equal(JsonPrefixStatus.Complete, Check(extended, "{\"name\": \"a\", \"id\": 10}"));
        Assert.Equal(JsonPrefixStatus.Partial, Check(extended, "{\"id\": 3, \"na"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(extended, "{\"id\": 3}"));            // name is required
        Assert.Equal(JsonPrefixStatus.Invalid, Check(extended, "{\"name\": \"a\"}"));      // id is required
        Assert.Equal(JsonPrefixStatus.Invalid, Check(extended, "{\"id\": 11"));            // one branch's maximum
        Assert.Equal(JsonPrefixStatus.Invalid, Check(extended, "{\"id\": -1"));            // the other's minimum
        Assert.Equal(JsonPrefixStatus.Invalid, Check(extended, "{\"id\": 2.5"));           // integer ∩ number
        Assert.Equal(JsonPrefixStatus.Invalid, Check(extended, "{\"other\""));             // listed properties only
    }

    [Fact]
    public void ABranchClosedToOtherPropertiesClosesTheMergedObject()
    {
        var closed = Schema("""
            {"allOf": [{"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false},
                       {"type": "object", "properties": {"id": {"maximum": 5, "type": "integer"}, "name": {"type": "string"}}}]}
            """);
        Assert.Equal(JsonPrefixStatus.Complete, Check(closed, "{\"id\": 3}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(closed, "{\"id\": 7}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(closed, "{\"id\": 3, \"name\""));     // the first branch has no name
        Assert.Equal(JsonPrefixStatus.Invalid, Check(closed, "{\"n"));
        // A branch's additionalProperties schema holds the other branch's properties it does not list itself.
        var typed = Schema("""
            {"allOf": [{"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": {"type": "string"}},
                       {"type": "object", "properties": {"tag": {"maxLength": 2, "type": "string"}}, "additionalProperties": true}]}
            """);
        Assert.Equal(JsonPrefixStatus.Complete, Check(typed, "{\"id\": 1, \"tag\": \"ab\", \"other\": \"x\"}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(typed, "{\"tag\": 1"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(typed, "{\"tag\": \"abc"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(typed, "{\"other\": 2"));
    }

    [Theory]
    [InlineData("3}", JsonPrefixStatus.Complete)]
    [InlineData("-40}", JsonPrefixStatus.Complete)]
    [InlineData("4}", JsonPrefixStatus.Invalid)]         // the number branch's maximum
    [InlineData("2.5", JsonPrefixStatus.Invalid)]        // integer ∩ number is integer
    [InlineData("\"a", JsonPrefixStatus.Invalid)]        // a string is not a number
    [InlineData("null}", JsonPrefixStatus.Invalid)]
    public void TypesAreIntersected(string value, JsonPrefixStatus expected) =>
        Assert.Equal(expected, CheckProperty(Property("{\"allOf\": [{\"type\": [\"integer\", \"string\", \"null\"]}, {\"type\": [\"number\", \"boolean\"], \"maximum\": 3}]}"), value));

    [Theory]
    [InlineData("1}", JsonPrefixStatus.Invalid)]         // the second branch's exclusive minimum
    [InlineData("1.5}", JsonPrefixStatus.Complete)]
    [InlineData("9.99}", JsonPrefixStatus.Complete)]
    [InlineData("10}", JsonPrefixStatus.Invalid)]        // the first branch's exclusive maximum
    [InlineData("10", JsonPrefixStatus.Invalid)]
    [InlineData("1", JsonPrefixStatus.Partial)]
    public void BoundsAreTightened(string value, JsonPrefixStatus expected) =>
        Assert.Equal(expected, CheckProperty(Property("{\"allOf\": [{\"type\": \"number\", \"minimum\": 1, \"exclusiveMaximum\": 10}, {\"type\": \"number\", \"exclusiveMinimum\": 1, \"maximum\": 10}]}"), value));

    [Fact]
    public void StringLengthsAreTightenedAndEnumsIntersected()
    {
        var length = Property("{\"allOf\": [{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 4}, {\"type\": \"string\", \"minLength\": 3, \"pattern\": \"^[a-z]+$\"}]}");
        Assert.Equal(JsonPrefixStatus.Invalid, CheckProperty(length, "\"ab\""));
        Assert.Equal(JsonPrefixStatus.Complete, CheckProperty(length, "\"abc\"}"));
        Assert.Equal(JsonPrefixStatus.Invalid, CheckProperty(length, "\"abcde"));
        Assert.Equal(JsonPrefixStatus.Invalid, CheckProperty(length, "\"AB"));
        // Each branch's own rules hold the values the enums share, a pattern among them.
        var enums = Property("{\"allOf\": [{\"enum\": [\"ant\", \"bee\", \"cat\"]}, {\"type\": \"string\", \"enum\": [\"cat\", \"bee\", \"dog\"]}, {\"type\": \"string\", \"pattern\": \"^c\"}]}");
        Assert.Equal(JsonPrefixStatus.Complete, CheckProperty(enums, "\"cat\"}"));
        Assert.Equal(JsonPrefixStatus.Invalid, CheckProperty(enums, "\"b"));
        Assert.Equal(JsonPrefixStatus.Invalid, CheckProperty(enums, "\"a"));
        var constant = Property("{\"allOf\": [{\"const\": \"on\"}, {\"enum\": [\"on\", \"off\"]}]}");
        Assert.Equal(JsonPrefixStatus.Complete, CheckProperty(constant, "\"on\"}"));
        Assert.Equal(JsonPrefixStatus.Invalid, CheckProperty(constant, "\"of"));
    }

    [Theory]
    [InlineData("{\"allOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]}", "schema.allOf[1].type")]
    [InlineData("{\"allOf\": [{\"enum\": [\"a\"]}, {\"enum\": [\"b\"]}]}", "no value can satisfy")]
    [InlineData("{\"allOf\": [{\"enum\": [\"abc\"]}, {\"type\": \"string\", \"maxLength\": 2}]}", "no value can satisfy")]
    [InlineData("{\"allOf\": [{\"type\": \"string\", \"pattern\": \"^a\"}, {\"type\": \"string\", \"pattern\": \"b$\"}]}", "schema.allOf[1].pattern")]
    [InlineData("{\"allOf\": [{\"type\": \"string\", \"format\": \"date\"}, {\"type\": \"string\", \"format\": \"uuid\"}]}", "format")]
    [InlineData("{\"allOf\": [{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"null\"}]}, {\"type\": \"string\"}]}", "schema.allOf[0].anyOf beside")]
    [InlineData("{\"allOf\": [{\"type\": \"object\", \"properties\": {\"a\": {}}, \"additionalProperties\": false}, {\"type\": \"object\", \"properties\": {\"b\": {}}, \"required\": [\"b\"]}]}", "'b' is required")]
    [InlineData("{\"allOf\": [{\"type\": \"object\"}, {\"not\": {\"type\": \"null\"}}]}", "schema.allOf[1].not")]
    [InlineData("{\"allOf\": []}", "non-empty")]
    [InlineData("{\"allOf\": [false]}", "schema.allOf[0] is false")]
    [InlineData("{\"$defs\": {\"A\": {\"allOf\": [{\"$ref\": \"#/$defs/A\"}]}}, \"allOf\": [{\"$ref\": \"#/$defs/A\"}]}", "comes back to itself")]
    [InlineData("{\"allOf\": [{\"type\": \"integer\", \"minimum\": 5}, {\"type\": \"integer\", \"maximum\": 4}]}", "no number is within")]
    public void WhatCannotBeMergedExactlyIsRefusedByName(string schema, string named) =>
        Assert.Contains(named, Assert.Throws<ArgumentException>(() => Schema(schema)).Message);

    /// <summary>
    /// Random bounds in two branches (each inclusive, exclusive or absent on a side): an integer is Complete exactly
    /// where it is within both branches', Partial exactly where it begins such an integer.
    /// </summary>
    [Fact]
    public void MergedBoundsAllowExactlyWhatBothBranchesAllow()
    {
        var bound = from kind in Gen.Elements("", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
                    from value in Gen.Choose(-30, 30)
                    select (kind, value);
        var pairs = from a in Gen.ArrayOf(bound, 2) from b in Gen.ArrayOf(bound, 2) select (a, b);
        Prop.ForAll(pairs.ToArbitrary(), pair =>
        {
            static string Branch((string Kind, int Value)[] bounds) =>
                "{\"type\": \"integer\"" + string.Concat(bounds.Where(x => x.Kind != "").DistinctBy(x => x.Kind).Select(x => $", \"{x.Kind}\": {x.Value}")) + "}";
            static bool Meets((string Kind, int Value)[] bounds, int n) => bounds.Where(x => x.Kind != "").DistinctBy(x => x.Kind).All(x => x.Kind switch
            {
                "minimum" => n >= x.Value,
                "exclusiveMinimum" => n > x.Value,
                "maximum" => n <= x.Value,
                _ => n < x.Value,
            });
            var allowed = Enumerable.Range(-40, 81).Where(n => Meets(pair.a, n) && Meets(pair.b, n)).ToList();
            string json = $"{{\"allOf\": [{Branch(pair.a)}, {Branch(pair.b)}]}}";
            if (allowed.Count == 0) return Assert.Throws<ArgumentException>(() => Property(json)) != null;
            var schema = Property(json);
            for (int n = -40; n <= 40; n++)
                if ((CheckProperty(schema, $"{n}}}") == JsonPrefixStatus.Complete) != allowed.Contains(n)) return false;
            return true;
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200).WithQuietOnSuccess(true));
    }
}
