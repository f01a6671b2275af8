using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Sampling;

public sealed partial class JsonSchemaPrefix
{
    private sealed partial class SchemaCompiler
    {
        /// <summary>allOf merges nested inside allOf merges past which a schema is taken to merge with itself for ever.</summary>
        private const int MaxMergeDepth = 64;
        private int _mergeDepth;

        /// <summary>
        /// One branch of an allOf once references and nested allOfs are followed: a schema of plain keywords, named by
        /// <paramref name="Path"/>, and the pointer it was reached by (null: written in place), so that a lone branch
        /// compiles as its reference and a recursive schema stays a cycle of nodes.
        /// </summary>
        private readonly record struct Branch(JsonElement Schema, string Path, string? Pointer);

        /// <summary>
        /// <c>allOf</c>: the value must meet every branch, so the branches (references followed, nested allOfs and the
        /// keywords beside it taken as more branches) are merged into one schema where that is exact: a lone branch is
        /// itself (Pydantic's <c>{"allOf": [{"$ref": ...}], "description": ...}</c>), else types are intersected, bounds
        /// tightened, enums and consts intersected and objects' properties combined (<see cref="Merge"/>). What cannot be
        /// merged exactly is refused by name; nothing is loosened.
        /// </summary>
        private Node AllOf(JsonElement s, string path)
        {
            if (++_mergeDepth > MaxMergeDepth) throw new ArgumentException($"{path}.allOf nests merges past {MaxMergeDepth} deep (a recursive schema merged with itself?), which a constrained reply does not support");
            try
            {
                var branches = new List<Branch>();
                Flatten(s, path, null, branches, new HashSet<string>(StringComparer.Ordinal));
                // The same schema twice asks nothing more than once (a recursive schema meets itself so).
                branches = [.. branches.DistinctBy(b => b.Schema.GetRawText(), StringComparer.Ordinal)];
                if (branches.Count == 0) return new AnyNode();
                if (branches.Count == 1) return branches[0].Pointer is { } pointer ? Reference(pointer, branches[0].Path) : Build(branches[0].Schema, branches[0].Path);
                return Build(Merge(branches, path), path);
            }
            finally
            {
                _mergeDepth--;
            }
        }

        /// <summary>The plain branches <paramref name="s"/> stands for; <paramref name="following"/>: the pointers being followed, against a loop.</summary>
        private void Flatten(JsonElement s, string path, string? pointer, List<Branch> branches, HashSet<string> following)
        {
            if (s.ValueKind == JsonValueKind.True) return;
            if (s.ValueKind == JsonValueKind.False) throw new ArgumentException($"{path} is false: no value can satisfy the allOf it is in");
            CheckKeywords(s, path);
            if (s.TryGetProperty("$ref", out var reference) && !s.TryGetProperty("allOf", out _))
            {
                RefuseBesideRef(s, path);
                string target = Pointer(reference, path + ".$ref");
                if (!following.Add(target)) throw new ArgumentException($"{path}.$ref '{target}' comes back to itself through allOf, which names no schema to merge");
                Flatten(Resolve(target, path + ".$ref"), target, target, branches, following);
                following.Remove(target);
                return;
            }
            if (s.TryGetProperty("allOf", out var allOf))
            {
                if (allOf.ValueKind != JsonValueKind.Array || allOf.GetArrayLength() == 0) throw new ArgumentException($"{path}.allOf must be a non-empty array");
                int i = 0;
                foreach (var branch in allOf.EnumerateArray()) Flatten(branch, $"{path}.allOf[{i++}]", null, branches, following);
                // What stands beside allOf holds as well: one more branch (a $ref there among it).
                var beside = new JsonObject();
                foreach (var p in s.EnumerateObject())
                    if (p.Name != "allOf" && !Annotations.Contains(p.Name)) beside[p.Name] = Copy(p.Value);
                if (beside.Count > 0) Flatten(ToElement(beside), path, null, branches, following);
                return;
            }
            branches.Add(new Branch(s, path, pointer));
        }

        /// <summary>Plain branches (no $ref, no allOf) as one schema that allows exactly the values all of them allow.</summary>
        private static JsonElement Merge(List<Branch> branches, string path)
        {
            foreach (var b in branches)
                foreach (var p in b.Schema.EnumerateObject())
                    if (p.Name is "anyOf" or "oneOf")
                        throw new ArgumentException($"{b.Path}.{p.Name} beside other allOf branches cannot be merged exactly in a constrained reply (each of its options would have to be merged with them)");
            var types = Types(branches, path);
            var merged = new JsonObject();
            if (Strings(branches, path, types) is { } strings)
            {
                merged["enum"] = new JsonArray([.. strings.Select(v => (JsonNode?)JsonValue.Create(v))]);
                return ToElement(merged);
            }
            if (types != null)
            {
                var names = TypeNames(types);
                merged["type"] = names.Count == 1 ? names[0] : new JsonArray([.. names.Select(n => (JsonNode?)JsonValue.Create(n))]);
            }
            // Each type's keywords say nothing about values of other types: only those of a type still allowed matter.
            if (types == null || types.Contains("string")) MergeStringRules(branches, path, merged);
            if (types == null || types.Contains("integer")) MergeNumberRules(branches, merged);
            if (types == null || types.Contains("array")) MergeArrays(branches, merged);
            if (types == null || types.Contains("object")) MergeObjects(branches, path, merged);
            return ToElement(merged);
        }

        /// <summary>
        /// The types every branch allows (null: no branch names one), as kinds of value: "integer" and "fraction" (a
        /// number that is not one) stand for "number", so integer ∩ number = integer.
        /// </summary>
        private static HashSet<string>? Types(List<Branch> branches, string path)
        {
            HashSet<string>? types = null;
            foreach (var b in branches)
            {
                if (!b.Schema.TryGetProperty("type", out var type)) continue;
                List<JsonElement> names = type.ValueKind == JsonValueKind.String ? [type]
                    : type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0 ? type.EnumerateArray().ToList()
                    : throw new ArgumentException($"{b.Path}.type must be a type name or a list of them");
                var kinds = new HashSet<string>(StringComparer.Ordinal);
                foreach (var name in names)
                    switch (name.ValueKind == JsonValueKind.String ? name.GetString() : "")
                    {
                        case "number": kinds.UnionWith(["integer", "fraction"]); break;
                        case "string" or "integer" or "boolean" or "null" or "array" or "object": kinds.Add(name.GetString()!); break;
                        default: throw new ArgumentException($"{b.Path}.type '{name}' is not a JSON schema type");
                    }
                types = types == null ? kinds : [.. types.Intersect(kinds)];
            }
            if (types is { Count: 0 })
                throw new ArgumentException($"{path}.allOf: no value can satisfy it, its branches' types have none in common ({string.Join("; ", branches.Where(b => b.Schema.TryGetProperty("type", out _)).Select(b => $"{b.Path}.type {b.Schema.GetProperty("type").GetRawText()}"))})");
            return types;
        }

        private static List<string> TypeNames(HashSet<string> types)
        {
            // "fraction" never comes without "integer": every type that allows one allows the other.
            string[] order = ["object", "array", "string", "integer", "boolean", "null"];
            return [.. order.Where(types.Contains).Select(t => t == "integer" && types.Contains("fraction") ? "number" : t)];
        }

        /// <summary>
        /// Where branches name their values (enum, const: strings here), the strings all of them name that every
        /// branch's type and string rules allow too (each tested on its own, so two patterns are no conflict here);
        /// null where none names values.
        /// </summary>
        private static List<string>? Strings(List<Branch> branches, string path, HashSet<string>? types)
        {
            List<string>? values = null;
            foreach (var b in branches)
            {
                var named = new List<List<string>>();
                if (b.Schema.TryGetProperty("const", out var constant)) named.Add([Text(constant, $"{b.Path}.const")]);
                if (b.Schema.TryGetProperty("enum", out var listed)) named.Add(Enum(listed, $"{b.Path}.enum"));
                foreach (var these in named) values = values == null ? these : [.. values.Where(these.Contains)];
            }
            if (values == null) return null;
            if (types != null && !types.Contains("string")) values.Clear();
            foreach (var b in branches)
                if (StringRules.Of(b.Schema, b.Path) is { } rules) values = [.. values.Where(rules.Allows)];
            return values.Count > 0 ? values
                : throw new ArgumentException($"{path}.allOf: no value can satisfy it, no string its branches' enums and consts name meets all their types and string rules");
        }

        private static List<string> Enum(JsonElement values, string path) =>
            values.ValueKind == JsonValueKind.Array && values.GetArrayLength() > 0 ? [.. values.EnumerateArray().Select((v, i) => Text(v, $"{path}[{i}]"))]
                : throw new ArgumentException($"{path} must be a non-empty array");

        /// <summary>Lengths tightened; a pattern or format that branches differ in cannot be merged into one, and is refused.</summary>
        private static void MergeStringRules(List<Branch> branches, string path, JsonObject merged)
        {
            Tightest(branches, "minLength", larger: true, merged);
            Tightest(branches, "maxLength", larger: false, merged);
            foreach (string keyword in new[] { "pattern", "format" })
            {
                var distinct = branches.Where(b => b.Schema.TryGetProperty(keyword, out _)).DistinctBy(b => b.Schema.GetProperty(keyword).GetRawText(), StringComparer.Ordinal).ToList();
                if (distinct.Count > 1)
                    throw new ArgumentException($"{path}.allOf: {distinct[0].Path}.{keyword} and {distinct[1].Path}.{keyword} differ; two {keyword}s cannot be merged exactly into one in a constrained reply");
                if (distinct.Count == 1) merged[keyword] = Copy(distinct[0].Schema.GetProperty(keyword));
            }
        }

        /// <summary>The greatest low bound and the least high one (at one value, an exclusive one), and a multiple of every multipleOf (their least common multiple).</summary>
        private static void MergeNumberRules(List<Branch> branches, JsonObject merged)
        {
            foreach (var (inclusive, exclusive, above) in new[] { ("minimum", "exclusiveMinimum", true), ("maximum", "exclusiveMaximum", false) })
            {
                (Decimal10 Value, string Keyword, JsonElement Raw)? tightest = null;
                foreach (var b in branches)
                    foreach (string keyword in new[] { inclusive, exclusive })
                    {
                        if (!b.Schema.TryGetProperty(keyword, out var raw)) continue;
                        var value = Decimal10.Of(raw, $"{b.Path}.{keyword}");
                        int c = tightest == null ? 1 : value.CompareTo(tightest.Value.Value) * (above ? 1 : -1);
                        if (c > 0 || c == 0 && keyword == exclusive) tightest = (value, keyword, raw);
                    }
                if (tightest is { } t) merged[t.Keyword] = Copy(t.Raw);
            }
            Decimal10? step = null;
            foreach (var b in branches)
                if (b.Schema.TryGetProperty("multipleOf", out var m))
                {
                    var next = NumberMultiples.Step(m, $"{b.Path}.multipleOf");
                    step = step is { } s ? Decimal10.LeastCommonMultiple(s, next).Reduced() : next;
                }
            if (step != null) merged["multipleOf"] = JsonNode.Parse(step.Value.ToString());
        }

        /// <summary>Items meeting every branch's items; counts tightened.</summary>
        private static void MergeArrays(List<Branch> branches, JsonObject merged)
        {
            var items = branches.Where(b => b.Schema.TryGetProperty("items", out _)).Select(b => b.Schema.GetProperty("items")).ToList();
            if (items.Count > 0) merged["items"] = AllOfNode(items);
            Tightest(branches, "minItems", larger: true, merged);
            Tightest(branches, "maxItems", larger: false, merged);
        }

        /// <summary>
        /// Properties united, each held to every branch's word on it: its schema there where the branch lists it, else
        /// that branch's additionalProperties (JSON Schema reads each branch's additionalProperties against its own
        /// properties), so a property one branch closes out (additionalProperties false) is left out, and refused where
        /// required. Properties no branch lists meet every branch's additionalProperties: false if one says false.
        /// Where no branch says, the merged object takes its listed properties only, as one object does here. Counts
        /// tightened.
        /// </summary>
        private static void MergeObjects(List<Branch> branches, string path, JsonObject merged)
        {
            Tightest(branches, "minProperties", larger: true, merged);
            Tightest(branches, "maxProperties", larger: false, merged);
            var required = branches.Where(b => b.Schema.TryGetProperty("required", out _))
                .SelectMany(b => b.Schema.GetProperty("required").EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString()! : throw new ArgumentException($"{b.Path}.required must list property names")))
                .Distinct(StringComparer.Ordinal).ToList();
            var names = branches.Where(b => b.Schema.TryGetProperty("properties", out _))
                .SelectMany(b => b.Schema.GetProperty("properties").EnumerateObject().Select(p => p.Name)).Distinct(StringComparer.Ordinal).ToList();
            var properties = new JsonObject();
            foreach (string name in names)
            {
                var parts = new List<JsonElement>();
                Branch? closedBy = null;
                foreach (var b in branches)
                {
                    if (b.Schema.TryGetProperty("properties", out var props) && props.TryGetProperty(name, out var schema)) parts.Add(schema);
                    else if (b.Schema.TryGetProperty("additionalProperties", out var extra))
                    {
                        if (extra.ValueKind == JsonValueKind.False) closedBy = b;
                        else if (extra.ValueKind != JsonValueKind.True) parts.Add(extra);
                    }
                }
                if (closedBy is { } closer)
                {
                    if (required.Contains(name, StringComparer.Ordinal))
                        throw new ArgumentException($"{path}.allOf: no value can satisfy it, '{name}' is required but {closer.Path} does not list it and says additionalProperties false");
                    continue;
                }
                properties[name] = AllOfNode(parts);
            }
            if (names.Count > 0) merged["properties"] = properties;
            if (required.Count > 0) merged["required"] = new JsonArray([.. required.Select(n => (JsonNode?)JsonValue.Create(n))]);
            var extras = branches.Where(b => b.Schema.TryGetProperty("additionalProperties", out _)).Select(b => b.Schema.GetProperty("additionalProperties")).ToList();
            if (extras.Any(e => e.ValueKind == JsonValueKind.False))
            {
                merged["additionalProperties"] = false;
                if (required.FirstOrDefault(n => !properties.ContainsKey(n)) is { } missing)
                    throw new ArgumentException($"{path}.allOf: no value can satisfy it, '{missing}' is required but no branch lists it and one says additionalProperties false");
            }
            else if (extras.Where(e => e.ValueKind != JsonValueKind.True).ToList() is { Count: > 0 } schemas) merged["additionalProperties"] = AllOfNode(schemas);
            else if (extras.Count > 0) merged["additionalProperties"] = true;
        }

        /// <summary>The largest (or smallest) of a count keyword across the branches, where any has it.</summary>
        private static void Tightest(List<Branch> branches, string keyword, bool larger, JsonObject merged)
        {
            var counts = branches.Select(b => Count(b.Schema, keyword, b.Path)).OfType<int>().ToList();
            if (counts.Count > 0) merged[keyword] = larger ? counts.Max() : counts.Min();
        }

        /// <summary>A schema meeting all of <paramref name="schemas"/>: the one where they are all the same, else their allOf (merged when compiled).</summary>
        private static JsonNode AllOfNode(List<JsonElement> schemas)
        {
            var distinct = schemas.DistinctBy(s => s.GetRawText(), StringComparer.Ordinal).ToList();
            return distinct.Count == 1 ? Copy(distinct[0]) : new JsonObject { ["allOf"] = new JsonArray([.. distinct.Select(s => (JsonNode?)Copy(s))]) };
        }

        private static JsonNode Copy(JsonElement e) => JsonNode.Parse(e.GetRawText())!;

        private static JsonElement ToElement(JsonNode node)
        {
            using var document = JsonDocument.Parse(node.ToJsonString());
            return document.RootElement.Clone();
        }
    }
}
