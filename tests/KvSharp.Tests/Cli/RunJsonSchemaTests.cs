using System.Text;
using KvSharp.Sampling;

namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp run --json-schema`: the output is (the start of) a value of the schema; a schema it cannot enforce, or text that is no JSON, is a one-line error.</summary>
public class RunJsonSchemaTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");
    private const string Schema = "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, \"age\": {\"type\": \"integer\"}}, \"required\": [\"name\", \"age\"]}";

    [Theory]
    [InlineData(Schema)]
    [InlineData("object")]
    public void TheOutputIsTheStartOfAnAllowedValue(string schema)
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Once upon a time", "--max-tokens", "60", "--temperature", "0.7", "--seed", "1",
            "--json-schema", schema, "--threads", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var checker = JsonSchemaPrefix.For(System.Text.Json.JsonDocument.Parse(schema == "object" ? "{\"type\": \"object\"}" : schema).RootElement);
        Assert.NotEqual(JsonPrefixStatus.Invalid, checker.Check(Encoding.UTF8.GetBytes(r.Stdout.TrimEnd('\n'))));
        Assert.Contains("{", r.Stdout);
    }

    [Theory]
    [InlineData("{\"type\": \"array\", \"uniqueItems\": true}", "schema.uniqueItems is not supported in a constrained reply")]
    [InlineData("{not json", "--json-schema is neither a file nor JSON")]
    public void WhatItCannotEnforceIsAOneLineError(string schema, string expected) =>
        CliOptionErrorTests.AssertOneLineError(CliRunner.Run("run", "-m", Stories, "-p", "hi", "--json-schema", schema), expected);
}
