using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Server.Errors;
using KvSharp.Server.Json;
using Microsoft.AspNetCore.Http;

namespace KvSharp.Server.Responses;

/// <summary>
/// <c>GET /v1/responses/{id}/input_items</c>: the items a stored response was generated from, as OpenAI lists them.
/// Those are the input items of every response in its chain, each earlier response's output after its input, then
/// its own input (instructions are not items). An item the client sent keeps its id; one without gets an id here
/// (msg_, fc_, fco_, rs_). A message's string content becomes one text part (input_text, or output_text for an
/// assistant message). Pages are by the item ids, newest first unless <c>order=asc</c>.
/// </summary>
internal static class ResponseInputItems
{
    /// <summary>The items a response made from <paramref name="input"/> after <paramref name="previous"/> was generated from: its chain's.</summary>
    public static IReadOnlyList<JsonElement> Of(StoredResponse? previous, JsonElement input)
    {
        var items = new List<JsonElement>();
        if (previous != null)
        {
            items.AddRange(previous.InputItems);
            items.AddRange(previous.Response.Output.Select(o => JsonSerializer.SerializeToElement(o, ServerJson.Default.ResponseItem)));
        }
        if (input.ValueKind == JsonValueKind.String)
        {
            items.Add(Message("user", new JsonArray(Part("input_text", input.GetString()!)), id: null));
            return items;
        }
        // The input was read by ResponsesInput first: every item here is an object of a known type.
        foreach (var item in input.EnumerateArray()) items.Add(Item(item));
        return items;
    }

    private static JsonElement Item(JsonElement item)
    {
        string? id = item.TryGetProperty("id", out var given) && given.ValueKind == JsonValueKind.String ? given.GetString() : null;
        string type = item.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "message";
        if (type == "message")
        {
            string role = item.GetProperty("role").GetString()!;
            var content = item.GetProperty("content");
            var parts = content.ValueKind == JsonValueKind.String
                ? new JsonArray(Part(role == "assistant" ? "output_text" : "input_text", content.GetString()!))
                : (JsonArray)JsonNode.Parse(content.GetRawText())!;
            return Message(role, parts, id);
        }
        var copy = (JsonObject)JsonNode.Parse(item.GetRawText())!;
        copy["id"] = id ?? ResponseOutput.NewId(type switch { "function_call" => "fc", "function_call_output" => "fco", _ => "rs" });
        if (type != "reasoning") copy["status"] ??= "completed";
        return JsonSerializer.SerializeToElement(copy, ServerJson.Default.JsonObject);
    }

    private static JsonElement Message(string role, JsonArray content, string? id) => JsonSerializer.SerializeToElement(new JsonObject
    {
        ["type"] = "message",
        ["id"] = id ?? ResponseOutput.NewId("msg"),
        ["status"] = "completed",
        ["role"] = role,
        ["content"] = content,
    }, ServerJson.Default.JsonObject);

    private static JsonObject Part(string type, string text) => new() { ["type"] = type, ["text"] = text };

    /// <summary>
    /// One page of <paramref name="items"/> as the query asks: <c>limit</c> (1 to 100, default 20), <c>order</c>
    /// (desc, the default, or asc), <c>after</c> and <c>before</c> (an item id: the page starts after it, or ends before
    /// it, in that order). <c>include</c> adds nothing here and is refused when given; so is any other parameter.
    /// </summary>
    public static ResponseItemList Page(IReadOnlyList<JsonElement> items, IQueryCollection query)
    {
        foreach (var key in query.Keys)
            if (key is not ("limit" or "order" or "after" or "before" or "include" or "include[]"))
                throw ApiError.Unsupported(key, $"'{key}' is not a parameter of input_items (limit, order, after, before)");
        if (query.ContainsKey("include") || query.ContainsKey("include[]"))
            throw ApiError.Unsupported("include", "include is not supported: nothing extra can be added to the items here");
        int limit = 20;
        if (query.TryGetValue("limit", out var l) && (!int.TryParse(l.ToString(), out limit) || limit is < 1 or > 100))
            throw ApiError.InvalidValue("limit", $"limit must be an integer from 1 to 100, got '{l}'");
        string order = query.TryGetValue("order", out var o) ? o.ToString() : "desc";
        if (order is not ("asc" or "desc")) throw ApiError.InvalidValue("order", $"order must be asc or desc, got '{order}'");

        var ordered = order == "asc" ? items : items.Reverse().ToList();
        int start = 0, end = ordered.Count;
        if (query.TryGetValue("after", out var after)) start = IndexOf(ordered, after.ToString(), "after") + 1;
        if (query.TryGetValue("before", out var before)) end = IndexOf(ordered, before.ToString(), "before");
        var data = new List<JsonElement>();
        for (int i = start; i < end && data.Count < limit; i++) data.Add(ordered[i]);
        return new ResponseItemList("list", data, data.Count > 0 ? Id(data[0]) : null, data.Count > 0 ? Id(data[^1]) : null, start + data.Count < end);
    }

    private static int IndexOf(IReadOnlyList<JsonElement> items, string id, string param)
    {
        for (int i = 0; i < items.Count; i++)
            if (Id(items[i]) == id) return i;
        throw ApiError.InvalidValue(param, $"{param} '{id}' is not the id of an input item of this response");
    }

    private static string Id(JsonElement item) => item.GetProperty("id").GetString()!;
}

/// <summary>A page of a response's input items (<see cref="ResponseInputItems"/>).</summary>
public sealed record ResponseItemList(string Object, List<JsonElement> Data, string? FirstId, string? LastId, bool HasMore);
