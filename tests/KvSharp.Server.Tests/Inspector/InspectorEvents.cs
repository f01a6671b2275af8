using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>
/// Reads the inspector's event stream with its event types (<c>message</c>: a whole snapshot; <c>delta</c>: the parts
/// that changed) and applies deltas as the page does, so a test can compare the result with the engine.
/// </summary>
internal static class InspectorEvents
{
    public static async Task<(string Type, JsonObject Data)> ReadAsync(StreamReader reader, CancellationToken cancellation)
    {
        string type = "message";
        while (await reader.ReadLineAsync(cancellation) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) type = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) return (type, JsonNode.Parse(line["data: ".Length..])!.AsObject());
        }
        throw new EndOfStreamException("the event stream ended");
    }

    /// <summary>Writes a delta's parts over <paramref name="state"/> (a whole snapshot), the map patched run by run.</summary>
    public static void Apply(JsonObject state, JsonObject delta)
    {
        Assert.Equal(state["changes"]!.GetValue<long>(), delta["base"]!.GetValue<long>());
        foreach (var (name, value) in delta)
        {
            if (name is "base" or "map_runs" or "prefix_tree_length") continue;
            if (name == "prefix_tree_runs")
            {
                var tree = state["prefix_tree"]!.AsArray().Select(n => n!.DeepClone()).Take(delta["prefix_tree_length"]!.GetValue<int>()).ToList();
                foreach (var run in value!.AsArray())
                {
                    int start = run![0]!.GetValue<int>();
                    var nodes = run[1]!.AsArray();
                    for (int i = 0; i < nodes.Count; i++)
                        if (start + i < tree.Count) tree[start + i] = nodes[i]!.DeepClone();
                        else tree.Add(nodes[i]!.DeepClone());
                }
                state["prefix_tree"] = new JsonArray([.. tree]);
                continue;
            }
            var copy = value?.DeepClone();
            if (name == "blocks")
            {
                var map = state["blocks"]!["map"]!.GetValue<string>().ToCharArray();
                foreach (var run in delta["map_runs"]!.AsArray())
                {
                    int start = run![0]!.GetValue<int>();
                    run[1]!.GetValue<string>().CopyTo(map.AsSpan(start));
                }
                copy!["map"] = new string(map);
            }
            state[name] = copy;
        }
    }

    public static string Json(JsonNode? node) => node?.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) ?? "null";
}
