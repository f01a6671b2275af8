using System.Globalization;
using System.Text.Json;

namespace KvSharp.Sampling;

/// <summary>A JSON schema compiled to the nodes that read text against it.</summary>
public sealed partial class JsonSchemaPrefix
{
    private static readonly HashSet<string> Annotations =
        ["description", "title", "default", "$schema", "examples", "$comment", "$id", "$anchor", "readOnly", "writeOnly", "deprecated", "$defs", "definitions",
         "discriminator"];

    private static readonly HashSet<string> AnyType = ["type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"];
    private static readonly HashSet<string> StringKeywords = ["minLength", "maxLength", "pattern", "format"];
    private static readonly HashSet<string> NumberKeywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];
    private static readonly HashSet<string> ArrayKeywords = ["items", "minItems", "maxItems"];
    private static readonly HashSet<string> ObjectKeywords = ["properties", "required", "additionalProperties", "minProperties", "maxProperties"];

    private const string Supported = "type, properties, required, additionalProperties, items, minItems, maxItems, enum, const, anyOf, " +
                                     "minProperties, maxProperties, oneOf (told apart by a const property), allOf (where its branches merge exactly), $ref, " +
                                     "minLength, maxLength, pattern, format, minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf";

    /// <summary>
    /// Compiles one schema document: every subschema to a node, a <c>$ref</c> (a JSON pointer into the document, such as
    /// <c>#/$defs/Item</c> or System.Text.Json's <c>#/properties/next</c> for a recursive type) to the node of what it
    /// points at, compiled once, so recursive schemas are cycles of nodes.
    /// </summary>
    private sealed partial class SchemaCompiler(JsonElement root, string rootPath)
    {
        private readonly Dictionary<string, RefNode> _refs = new(StringComparer.Ordinal);

        public Node Compile() => Build(root, rootPath);

        private Node Build(JsonElement s, string path)
        {
            if (s.ValueKind == JsonValueKind.True) return new AnyNode();
            CheckKeywords(s, path);
            // Before $ref: beside allOf a reference is one more branch to merge.
            if (s.TryGetProperty("allOf", out _)) return AllOf(s, path);
            if (s.TryGetProperty("$ref", out var reference))
            {
                RefuseBesideRef(s, path);
                return Reference(Pointer(reference, path + ".$ref"), path + ".$ref");
            }
            if (s.TryGetProperty("anyOf", out var anyOf))
            {
                if (anyOf.ValueKind != JsonValueKind.Array || anyOf.GetArrayLength() == 0) throw new ArgumentException($"{path}.anyOf must be a non-empty array");
                return new UnionNode([.. anyOf.EnumerateArray().Select((x, i) => Build(x, $"{path}.anyOf[{i}]"))]);
            }
            if (s.TryGetProperty("oneOf", out var oneOf))
            {
                if (oneOf.ValueKind != JsonValueKind.Array || oneOf.GetArrayLength() == 0) throw new ArgumentException($"{path}.oneOf must be a non-empty array");
                // Exactly one branch may match. Where a required property holds a different constant in each (a tagged
                // union, as Pydantic and System.Text.Json's polymorphism write them), no value matches two, and oneOf
                // is anyOf; other branches could overlap, which the checker cannot rule out.
                if (Discriminator(oneOf) == null)
                    throw new ArgumentException($"{path}.oneOf is supported in a constrained reply only where a required property holds a different constant in each branch");
                return new UnionNode([.. oneOf.EnumerateArray().Select((x, i) => Build(x, $"{path}.oneOf[{i}]"))]);
            }
            if (s.TryGetProperty("const", out _) || s.TryGetProperty("enum", out _)) return new StringNode([.. Named(s, path)], null);
            if (!s.TryGetProperty("type", out var type))
            {
                if (s.TryGetProperty("properties", out _)) return BuildType("object", s, path);
                // A keyword of one type says nothing about values of the others: which type it is must be said.
                if (s.EnumerateObject().Select(p => p.Name).FirstOrDefault(name => !Annotations.Contains(name)) is { } keyword)
                    throw new ArgumentException($"{path}.{keyword} needs a type beside it in a constrained reply");
                return new AnyNode();
            }
            if (type.ValueKind == JsonValueKind.String) return BuildType(type.GetString()!, s, path);
            if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0)
                return new UnionNode([.. type.EnumerateArray().Select(t => BuildType(t.ValueKind == JsonValueKind.String ? t.GetString()! : "", s, path))]);
            throw new ArgumentException($"{path}.type must be a type name or a list of them");
        }

        /// <summary>
        /// The strings a schema's enum and const name (those both name, where it gives both), each kept only where the
        /// schema's type and string rules allow it too: a value must meet every keyword beside them, never only these.
        /// </summary>
        private static List<string> Named(JsonElement s, string path)
        {
            List<string>? values = null;
            if (s.TryGetProperty("const", out var constant)) values = [Text(constant, $"{path}.const")];
            if (s.TryGetProperty("enum", out var listed))
            {
                var these = Enum(listed, $"{path}.enum");
                values = values == null ? these : [.. values.Where(these.Contains)];
            }
            if (s.TryGetProperty("type", out var type) && !(type.ValueKind == JsonValueKind.String ? type.GetString() == "string"
                    : type.ValueKind == JsonValueKind.Array && type.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && t.GetString() == "string")))
                values!.Clear();
            if (StringRules.Of(s, path) is { } rules) values = [.. values!.Where(rules.Allows)];
            return values!.Count > 0 ? values
                : throw new ArgumentException($"{path}: no value can satisfy it, no string its enum or const names meets its type and string rules");
        }

        private Node BuildType(string type, JsonElement s, string path) => type switch
        {
            "string" => new StringNode(null, StringRules.Of(s, path)),
            "integer" => new NumberNode(integer: true, NumberRule(s, path, integer: true)),
            "number" => new NumberNode(integer: false, NumberRule(s, path, integer: false)),
            "boolean" => new LiteralNode(["true", "false"]),
            "null" => new LiteralNode(["null"]),
            "array" => new ArrayNode(s.TryGetProperty("items", out var items) ? Build(items, path + ".items") : new AnyNode(),
                Count(s, "minItems", path) ?? 0, Count(s, "maxItems", path)),
            "object" => BuildObject(s, path),
            _ => throw new ArgumentException($"{path}.type '{type}' is not a JSON schema type"),
        };

        private ObjectNode BuildObject(JsonElement s, string path)
        {
            var properties = new Dictionary<string, Node>(StringComparer.Ordinal);
            if (s.TryGetProperty("properties", out var props))
                foreach (var p in props.EnumerateObject()) properties[p.Name] = Build(p.Value, $"{path}.properties.{p.Name}");
            var required = s.TryGetProperty("required", out var req) ? req.EnumerateArray().Select(x => x.GetString()!).ToHashSet(StringComparer.Ordinal) : [];
            // Unspecified, an object with listed properties takes those only (what strict structured outputs ask for);
            // one without any takes any property.
            Node? additional = s.TryGetProperty("additionalProperties", out var extra)
                ? extra.ValueKind switch { JsonValueKind.False => null, JsonValueKind.True => new AnyNode(), _ => Build(extra, path + ".additionalProperties") }
                : properties.Count == 0 ? new AnyNode() : null;
            // A required name the object could never hold would leave a reply no way to end.
            foreach (string name in required)
                if (!properties.ContainsKey(name) && (properties.Count > 0 || additional == null))
                    throw new ArgumentException($"{path}.required names '{name}', which is not among its properties");
            // So would counts no object of these properties can meet.
            int least = Count(s, "minProperties", path) ?? 0;
            int? most = Count(s, "maxProperties", path);
            if (most < least) throw new ArgumentException($"{path}: no value can satisfy it, minProperties {least} is above maxProperties {most}");
            if (most < required.Count) throw new ArgumentException($"{path}: no value can satisfy it, {required.Count} properties are required and maxProperties is {most}");
            if (additional == null && properties.Count < least)
                throw new ArgumentException($"{path}: no value can satisfy it, minProperties is {least} and the object can hold only its {properties.Count} listed properties");
            return new ObjectNode(properties, required, additional, least, most);
        }

        /// <summary>A schema object whose keywords are all read here (or annotations); anything else is refused by name.</summary>
        private static void CheckKeywords(JsonElement s, string path)
        {
            if (s.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{path} must be a JSON schema object, got {s.ValueKind}");
            foreach (var p in s.EnumerateObject())
                if (!Annotations.Contains(p.Name) && !AnyType.Contains(p.Name) && !StringKeywords.Contains(p.Name) && !NumberKeywords.Contains(p.Name)
                    && !ArrayKeywords.Contains(p.Name) && !ObjectKeywords.Contains(p.Name))
                    throw new ArgumentException($"{path}.{p.Name} is not supported in a constrained reply (supported: {Supported})");
        }

        /// <summary>A <c>$ref</c> takes no constraining keyword beside it (outside allOf, drafts disagree on what that means).</summary>
        private static void RefuseBesideRef(JsonElement s, string path)
        {
            if (s.EnumerateObject().Select(p => p.Name).FirstOrDefault(name => !Annotations.Contains(name) && name != "$ref") is { } other)
                throw new ArgumentException($"{path}.{other} beside $ref is not supported in a constrained reply");
        }

        /// <summary>A <c>$ref</c>'s pointer, which must point into the schema itself.</summary>
        private static string Pointer(JsonElement reference, string path) =>
            reference.ValueKind == JsonValueKind.String && reference.GetString() is { } pointer && pointer.StartsWith('#') ? pointer
                : throw new ArgumentException($"{path} must point into the schema itself (\"#/...\"); other documents are not supported in a constrained reply");

        /// <summary>The number rule of a schema: its multiples within its bounds, or its bounds, or none.</summary>
        private static INumberRule? NumberRule(JsonElement s, string path, bool integer) =>
            s.TryGetProperty("multipleOf", out _) ? NumberMultiples.Of(s, path, integer) : NumberBounds.Of(s, path, integer);

        /// <summary>The node a <c>$ref</c> points at: one per pointer, its target compiled the first time it is met.</summary>
        private RefNode Reference(string pointer, string path)
        {
            if (_refs.TryGetValue(pointer, out var known)) return known;
            var node = new RefNode(pointer);
            _refs[pointer] = node;
            node.Target = Build(Resolve(pointer, path), pointer);
            if (node.Target is RefNode chain && chain.LeadsTo(node)) throw new ArgumentException($"{path} '{pointer}' refers only to itself");
            return node;
        }

        /// <summary>A property every branch requires with a constant of its own (the branches' references followed); null where there is none.</summary>
        private string? Discriminator(JsonElement branches)
        {
            var objects = new List<JsonElement>();
            foreach (var branch in branches.EnumerateArray())
            {
                var b = branch;
                for (int hops = 0; b.ValueKind == JsonValueKind.Object && b.TryGetProperty("$ref", out var r) && r.ValueKind == JsonValueKind.String && hops < 32; hops++)
                    b = Resolve(r.GetString()!, "oneOf");
                if (b.ValueKind != JsonValueKind.Object || !b.TryGetProperty("properties", out var props) || props.ValueKind != JsonValueKind.Object) return null;
                objects.Add(b);
            }
            static string? Constant(JsonElement o, string name) =>
                o.GetProperty("properties").TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.Object
                && o.TryGetProperty("required", out var req) && req.ValueKind == JsonValueKind.Array && req.EnumerateArray().Any(x => x.ValueKind == JsonValueKind.String && x.GetString() == name)
                    ? p.TryGetProperty("const", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()
                    : p.TryGetProperty("enum", out var e) && e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 1 && e[0].ValueKind == JsonValueKind.String ? e[0].GetString() : null
                    : null;
            foreach (var candidate in objects[0].GetProperty("properties").EnumerateObject())
            {
                var constants = objects.Select(o => Constant(o, candidate.Name)).ToList();
                if (constants.All(c => c != null) && constants.Distinct(StringComparer.Ordinal).Count() == constants.Count) return candidate.Name;
            }
            return null;
        }

        /// <summary>The subschema a JSON pointer (RFC 6901, in a URI fragment) names.</summary>
        private JsonElement Resolve(string pointer, string path)
        {
            var at = root;
            foreach (string raw in Uri.UnescapeDataString(pointer[1..]).Split('/').Skip(1))
            {
                string token = raw.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                if (at.ValueKind == JsonValueKind.Object && at.TryGetProperty(token, out var child)) at = child;
                else if (at.ValueKind == JsonValueKind.Array && int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out int i) && i < at.GetArrayLength()) at = at[i];
                else throw new ArgumentException($"{path} '{pointer}' points at nothing in the schema");
            }
            return at;
        }
    }

    private static string Text(JsonElement v, string path) => v.ValueKind == JsonValueKind.String ? v.GetString()!
        : throw new ArgumentException($"{path} must be a string (enums and consts of other types are not supported in a constrained reply)");

    /// <summary>A non-negative integer keyword (minLength, maxItems ...), or null where the schema has none.</summary>
    private static int? Count(JsonElement s, string keyword, string path)
    {
        if (!s.TryGetProperty(keyword, out var v)) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n >= 0 ? n
            : throw new ArgumentException($"{path}.{keyword} must be a non-negative integer");
    }
}
