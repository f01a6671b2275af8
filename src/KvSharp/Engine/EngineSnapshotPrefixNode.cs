namespace KvSharp.Engine;

/// <summary>
/// A node of the prefix cache's tree: a run of published blocks that follow one another in a hash chain with no
/// branch between them and the same hit count (a long conversation is one node, not hundreds). Shared prefixes
/// branch: two prompts that differ after their first blocks are two children of one node.
/// </summary>
/// <param name="Id">The node's index in <see cref="EngineSnapshotDetail.PrefixTree"/>.</param>
/// <param name="Parent">The parent node's index; -1 for a chain's first run.</param>
/// <param name="Chain">Which chain root (model and tenant salt) this belongs to, numbered from 0 in the snapshot.</param>
/// <param name="Blocks">The run's blocks, first to last.</param>
/// <param name="Hits">Times each block of the run was adopted by a request.</param>
/// <param name="Held">Blocks of the run that some sequence holds now (the rest are cached, evictable).</param>
/// <param name="Orphaned">The run's first block lost its parent (evicted and reused): nothing can reach it any more.</param>
public sealed record EngineSnapshotPrefixNode(int Id, int Parent, int Chain, IReadOnlyList<int> Blocks, int Hits, int Held, bool Orphaned);
