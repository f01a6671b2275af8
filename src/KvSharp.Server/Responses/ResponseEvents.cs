using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Server.Chat;
using KvSharp.Server.Generation;
using KvSharp.Server.Json;
using KvSharp.Tokenization;

namespace KvSharp.Server.Responses;

/// <summary>
/// A chat call's stream (<see cref="ChatChunks"/>: thinking, text, tool-call pieces) as the Responses API's events:
/// <c>response.created</c> and <c>response.in_progress</c> first; each output item opened
/// (<c>response.output_item.added</c>), filled by deltas (<c>response.reasoning_text.delta</c>,
/// <c>response.output_text.delta</c> within a content part, <c>response.function_call_arguments.delta</c>) and closed
/// with its whole text (the matching <c>.done</c> events, <c>response.output_item.done</c>) as the reply moves from one
/// to the next; the whole response last, with its usage (<c>response.completed</c>, or <c>response.incomplete</c> where
/// the length limit cut it). Every event numbered in order (sequence_number); no <c>data: [DONE]</c>.
/// </summary>
internal sealed class ResponseEvents(ResponseObject shell, ITokenizer tokenizer) : IChatChunkWriter
{
    private enum Kind { None, Reasoning, Message, Call }

    private readonly List<ResponseItem> _items = [];
    private readonly StringBuilder _text = new();
    private Kind _open;
    private string _openId = "", _callId = "", _callName = "";
    private string? _reasoning;
    private int _sequence;
    private bool _failed;
    private string? _finishReason;

    /// <summary>The response as the last event gave it; null until then (or when the stream ended with an error).</summary>
    public ResponseObject? Final { get; private set; }

    public bool EndsWithDone => false;

    /// <summary>As the stream begins: the response created, and in progress.</summary>
    public IReadOnlyList<byte[]> Start() =>
        [Event("response.created", new JsonObject { ["response"] = Node(shell) }), Event("response.in_progress", new JsonObject { ["response"] = Node(shell) })];

    /// <summary>
    /// The response failed after its stream began (the model could not go on, or a call that streamed does not read as
    /// one): <c>response.failed</c>, with the error and the output so far, ends the stream; nothing is stored.
    /// </summary>
    public IReadOnlyList<byte[]> Error(Errors.ApiError error)
    {
        _failed = true;
        var failed = shell with { Status = "failed", Output = [.. _items], Error = new ResponseError(error.Code ?? "server_error", error.Message) };
        return [Event("response.failed", new JsonObject { ["response"] = Node(failed) })];
    }

    public IReadOnlyList<byte[]> Write(ChatChunkChoice[] choices, Usage? usage)
    {
        var events = new List<byte[]>();
        if (_failed) return events; // after response.failed, nothing
        foreach (var choice in choices)
        {
            var delta = choice.Delta;
            if (delta.ReasoningContent is { Length: > 0 } thought) Append(events, Kind.Reasoning, thought);
            if (delta.Content is { Length: > 0 } text) Append(events, Kind.Message, text);
            foreach (var call in delta.ToolCalls ?? [])
            {
                if (call.Id != null)
                {
                    Close(events);
                    Open(events, Kind.Call, call.Id, call.Function.Name ?? "");
                }
                if (call.Function.Arguments.Length > 0) Append(events, Kind.Call, call.Function.Arguments);
            }
            if (choice.FinishReason != null)
            {
                _finishReason = choice.FinishReason;
                Close(events);
            }
        }
        if (usage != null)
        {
            Close(events);
            bool cut = _finishReason == "length";
            Final = ResponseOutput.Finished(shell, [.. _items], usage, ResponseOutput.ReasoningTokens(tokenizer, _reasoning), cut);
            events.Add(Event(cut ? "response.incomplete" : "response.completed", new JsonObject { ["response"] = Node(Final) }));
        }
        return events;
    }

    /// <summary>Adds <paramref name="piece"/> to the open item of <paramref name="kind"/>, opening one (and closing another) first if needed.</summary>
    private void Append(List<byte[]> events, Kind kind, string piece)
    {
        if (_open != kind)
        {
            Close(events);
            Open(events, kind, "", "");
        }
        _text.Append(piece);
        events.Add(kind switch
        {
            Kind.Reasoning => Event("response.reasoning_text.delta", Part(new JsonObject { ["delta"] = piece })),
            Kind.Message => Event("response.output_text.delta", Part(new JsonObject { ["delta"] = piece, ["logprobs"] = new JsonArray() })),
            _ => Event("response.function_call_arguments.delta", Located(new JsonObject { ["delta"] = piece })),
        });
    }

    private void Open(List<byte[]> events, Kind kind, string callId, string name)
    {
        _open = kind;
        _text.Clear();
        (_callId, _callName) = (callId, name);
        _openId = ResponseOutput.NewId(kind switch { Kind.Reasoning => "rs", Kind.Message => "msg", _ => "fc" });
        var item = kind switch
        {
            Kind.Reasoning => new ResponseItem("reasoning", _openId, "in_progress", Content: [], Summary: []),
            Kind.Message => new ResponseItem("message", _openId, "in_progress", Role: "assistant", Content: []),
            _ => new ResponseItem("function_call", _openId, "in_progress", CallId: callId, Name: name, Arguments: ""),
        };
        events.Add(Event("response.output_item.added", new JsonObject { ["output_index"] = _items.Count, ["item"] = Node(item) }));
        if (kind == Kind.Message)
            events.Add(Event("response.content_part.added", Part(new JsonObject { ["part"] = Node(new ResponseContent("output_text", "", [])) })));
    }

    /// <summary>Closes the open item, if any: its text whole in the .done events, and the item as the output keeps it.</summary>
    private void Close(List<byte[]> events)
    {
        if (_open == Kind.None) return;
        string text = _text.ToString();
        ResponseItem item;
        switch (_open)
        {
            case Kind.Reasoning:
                _reasoning = _reasoning == null ? text : _reasoning + text;
                events.Add(Event("response.reasoning_text.done", Part(new JsonObject { ["text"] = text })));
                item = ResponseOutput.Reasoning(_openId, text);
                break;
            case Kind.Message:
                var part = new ResponseContent("output_text", text, []);
                events.Add(Event("response.output_text.done", Part(new JsonObject { ["text"] = text, ["logprobs"] = new JsonArray() })));
                events.Add(Event("response.content_part.done", Part(new JsonObject { ["part"] = Node(part) })));
                item = ResponseOutput.Message(_openId, text, cut: _finishReason == "length");
                break;
            default:
                events.Add(Event("response.function_call_arguments.done", Located(new JsonObject { ["name"] = _callName, ["arguments"] = text })));
                item = ResponseOutput.Call(_openId, _callId, _callName, text);
                break;
        }
        events.Add(Event("response.output_item.done", new JsonObject { ["output_index"] = _items.Count, ["item"] = Node(item) }));
        _items.Add(item);
        _open = Kind.None;
    }

    /// <summary>An event about the open item: its id and place in the output.</summary>
    private JsonObject Located(JsonObject fields)
    {
        fields["item_id"] = _openId;
        fields["output_index"] = _items.Count;
        return fields;
    }

    /// <summary>An event about the open item's (only) content part.</summary>
    private JsonObject Part(JsonObject fields)
    {
        Located(fields)["content_index"] = 0;
        return fields;
    }

    private byte[] Event(string type, JsonObject fields)
    {
        var e = new JsonObject { ["type"] = type, ["sequence_number"] = _sequence++ };
        foreach (var (name, value) in fields.ToList())
        {
            fields.Remove(name);
            e[name] = value;
        }
        return Encoding.UTF8.GetBytes(e.ToJsonString());
    }

    private static JsonNode? Node(ResponseObject response) => JsonSerializer.SerializeToNode(response, ServerJson.Default.ResponseObject);

    private static JsonNode? Node(ResponseItem item) => JsonSerializer.SerializeToNode(item, ServerJson.Default.ResponseItem);

    private static JsonNode? Node(ResponseContent part) => JsonSerializer.SerializeToNode(part, ServerJson.Default.ResponseContent);
}
