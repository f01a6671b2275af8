using System.Text.Json.Serialization;
using KvSharp.Engine;

namespace KvSharp.Server.Inspector;

/// <summary>
/// The snapshot's JSON: snake_case like the rest of the API (documented in docs/inspector.md). Its parts are
/// registered too: the event stream serialises each part once and compares it with the previous snapshot's.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(EngineSnapshotDetail))]
[JsonSerializable(typeof(EngineSnapshotModel))]
[JsonSerializable(typeof(EngineSnapshotBlocks))]
[JsonSerializable(typeof(IReadOnlyList<EngineSnapshotSequence>))]
[JsonSerializable(typeof(EngineSnapshotPrefixNode))]
[JsonSerializable(typeof(EngineSnapshotCounters))]
[JsonSerializable(typeof(IReadOnlyList<EngineSnapshotTier>))]
internal sealed partial class InspectorJson : JsonSerializerContext;
