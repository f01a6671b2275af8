using System.Text.Json.Serialization;
using KvSharp.Engine;

namespace KvSharp.Server.Inspector;

/// <summary>The snapshot's JSON: snake_case like the rest of the API (documented in docs/inspector.md).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(EngineSnapshotDetail))]
internal sealed partial class InspectorJson : JsonSerializerContext;
