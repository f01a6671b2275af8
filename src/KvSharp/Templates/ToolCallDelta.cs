namespace KvSharp.Templates;

/// <summary>
/// A piece of a tool call while its reply streams, as OpenAI streams calls: a call's first delta carries its index, id
/// and name with no arguments yet, each later one its index and the next fragment of its arguments' text (a client
/// joins the fragments); a call that could not stream comes in one delta with all of it.
/// </summary>
public sealed record ToolCallDelta(int Index, string? Id, string? Name, string Arguments);
