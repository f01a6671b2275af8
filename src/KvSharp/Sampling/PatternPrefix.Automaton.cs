namespace KvSharp.Sampling;

/// <summary>Terms compiled to the pruned NFA the checks run on.</summary>
public sealed partial class PatternPrefix
{
    /// <summary>
    /// The compiled machine. Thompson's construction gives nodes that take a code point, nodes that only branch, and
    /// anchors; the checker keeps just the taking states (and a pseudo-state for "may end here"), each with the set
    /// it leads to through branches and anchors precomputed. An anchor is an edge passable only where it holds:
    /// <c>^</c> before the first code point, <c>$</c> where no code point follows; so past a <c>$</c> only the
    /// pseudo-state can be reached.
    /// </summary>
    private sealed class Automaton
    {
        public int Words { get; private set; }
        public int Accept { get; private set; }
        public ulong[] Start { get; private set; } = [];
        public ulong[] Follow { get; private set; } = [];
        public (int First, int Count)[] FollowWords { get; private set; } = [];
        public int[] Boundaries { get; private set; } = [];
        public int[] AsciiInterval { get; private set; } = [];
        public ulong[] Takers { get; private set; } = [];
        public ulong[]? ViableForever { get; private set; }
        public ulong[]? MatchesForever { get; private set; }

        private enum Kind : byte { Take, Branch, LineStart, LineEnd, Accept }

        /// <summary>A Thompson node: Take goes to Out after its set's code point; Branch to Out and Out2 (when ≥ 0) freely.</summary>
        private struct Node
        {
            public Kind Kind;
            public int Set;
            public int Out;
            public int Out2;
        }

        private readonly List<Node> _nodes = [];
        private readonly List<CodePointSet> _sets = [];
        private readonly Dictionary<CodePointSet, int> _setIds = [];

        public static Automaton Compile(Term pattern)
        {
            var a = new Automaton();
            // A match may be anywhere: [\s\S]* around the pattern (anchors inside it then decide).
            var anywhere = new Repeat(new Take(CodePointSet.All), 0, -1);
            int accept = a.Add(Kind.Accept);
            int start = a.Emit(new Sequence([anywhere, pattern, anywhere]), accept);
            a.Build(start);
            return a;
        }

        private int Add(Kind kind, int set = -1, int next = -1, int next2 = -1)
        {
            _nodes.Add(new Node { Kind = kind, Set = set, Out = next, Out2 = next2 });
            return _nodes.Count - 1;
        }

        /// <summary>The nodes for <paramref name="term"/>, built back to front: their entry, leading on to <paramref name="next"/>.</summary>
        private int Emit(Term term, int next)
        {
            switch (term)
            {
                case Take t:
                    if (!_setIds.TryGetValue(t.Set, out int id))
                    {
                        _setIds[t.Set] = id = _sets.Count;
                        _sets.Add(t.Set);
                    }
                    return Add(Kind.Take, id, next);
                case Anchor anchor:
                    return Add(anchor.AtStart ? Kind.LineStart : Kind.LineEnd, next: next);
                case Sequence s:
                    for (int i = s.Items.Length - 1; i >= 0; i--) next = Emit(s.Items[i], next);
                    return next;
                case Choice c:
                    int entry = Emit(c.Options[^1], next);
                    for (int i = c.Options.Length - 2; i >= 0; i--) entry = Add(Kind.Branch, next: Emit(c.Options[i], next), next2: entry);
                    return entry;
                case Repeat r:
                    int head;
                    if (r.Max < 0)
                    {
                        head = Add(Kind.Branch, next2: next);
                        var loop = _nodes[head];
                        loop.Out = Emit(r.Body, head);
                        _nodes[head] = loop;
                    }
                    else
                    {
                        // x{0,k} as (x(x(...)?)?)?: each optional copy may leave straight for next.
                        head = next;
                        for (int k = 0; k < r.Max - r.Min; k++) head = Add(Kind.Branch, next: Emit(r.Body, head), next2: next);
                    }
                    for (int k = 0; k < r.Min; k++) head = Emit(r.Body, head);
                    return head;
                default:
                    throw new InvalidOperationException(term.GetType().Name);
            }
        }

        /// <summary>
        /// Walks branch edges (and the anchors allowed) from <paramref name="from"/>: the Take nodes reached, into
        /// <paramref name="takes"/> when given; whether Accept is.
        /// </summary>
        private bool Walk(int from, bool lineStart, bool lineEnd, List<int>? takes, int[] seen, int stamp, Stack<int> stack)
        {
            bool accepts = false;
            stack.Push(from);
            while (stack.Count > 0)
            {
                int n = stack.Pop();
                if (n < 0 || seen[n] == stamp) continue;
                seen[n] = stamp;
                var node = _nodes[n];
                switch (node.Kind)
                {
                    case Kind.Take: takes?.Add(n); break;
                    case Kind.Accept: accepts = true; break;
                    case Kind.Branch: stack.Push(node.Out2); stack.Push(node.Out); break;
                    case Kind.LineStart when lineStart: stack.Push(node.Out); break;
                    case Kind.LineEnd when lineEnd: stack.Push(node.Out); break;
                }
            }
            return accepts;
        }

        private void Build(int startNode)
        {
            int count = _nodes.Count;
            var seen = new int[count];
            int stamp = 0;
            var stack = new Stack<int>();

            // Per Take node: where it leads after its code point (no '^' there), and whether the text may end then.
            var successors = new List<int>[count];
            var ends = new bool[count];
            for (int n = 0; n < count; n++)
            {
                if (_nodes[n].Kind != Kind.Take) continue;
                successors[n] = [];
                Walk(_nodes[n].Out, lineStart: false, lineEnd: false, successors[n], seen, ++stamp, stack);
                ends[n] = Walk(_nodes[n].Out, lineStart: false, lineEnd: true, null, seen, ++stamp, stack);
            }
            var initial = new List<int>();
            Walk(startNode, lineStart: true, lineEnd: false, initial, seen, ++stamp, stack);
            // In an empty text '^' and '$' both hold, in any order.
            bool emptyMatches = Walk(startNode, lineStart: true, lineEnd: true, null, seen, ++stamp, stack);

            // Live: takes some code point and leads on to an end. Backwards from the nodes that may end.
            var live = new bool[count];
            var predecessors = new List<int>?[count];
            var work = new Queue<int>();
            for (int n = 0; n < count; n++)
            {
                if (successors[n] == null || _sets[_nodes[n].Set].IsEmpty) continue;
                foreach (int s in successors[n]) (predecessors[s] ??= []).Add(n);
                if (ends[n])
                {
                    live[n] = true;
                    work.Enqueue(n);
                }
            }
            while (work.Count > 0)
                foreach (int p in predecessors[work.Dequeue()] ?? [])
                    if (!live[p])
                    {
                        live[p] = true;
                        work.Enqueue(p);
                    }

            // Kept: live and reachable from the start through live nodes, numbered densely.
            var index = new int[count];
            Array.Fill(index, -1);
            var kept = new List<int>();
            foreach (int n in initial)
                if (live[n] && index[n] < 0)
                {
                    index[n] = kept.Count;
                    kept.Add(n);
                }
            for (int k = 0; k < kept.Count; k++)
                foreach (int s in successors[kept[k]])
                    if (live[s] && index[s] < 0)
                    {
                        index[s] = kept.Count;
                        kept.Add(s);
                    }

            Accept = kept.Count;
            Words = (kept.Count + 1 + 63) / 64;
            Start = new ulong[Words];
            foreach (int n in initial)
                if (index[n] >= 0) Set(Start, index[n]);
            if (emptyMatches) Set(Start, Accept);
            Follow = new ulong[(kept.Count + 1) * Words];
            FollowWords = new (int, int)[kept.Count + 1];
            for (int k = 0; k < kept.Count; k++)
            {
                var row = Follow.AsSpan(k * Words, Words);
                foreach (int s in successors[kept[k]])
                    if (index[s] >= 0) Set(row, index[s]);
                if (ends[kept[k]]) Set(row, Accept);
                int first = row.IndexOfAnyExcept(0UL), last = row.LastIndexOfAnyExcept(0UL);
                FollowWords[k] = (first, last - first + 1);
            }
            BuildIntervals(kept);
            BuildForever(kept);
        }

        /// <summary>
        /// Splits the code points into intervals no kept state's class divides, each with the states that take it, so a
        /// step looks one row up instead of testing every state's class.
        /// </summary>
        private void BuildIntervals(List<int> kept)
        {
            var boundaries = new SortedSet<int> { 0 };
            var statesBySet = new Dictionary<int, ulong[]>();
            for (int k = 0; k < kept.Count; k++)
            {
                int set = _nodes[kept[k]].Set;
                if (!statesBySet.TryGetValue(set, out var states))
                {
                    statesBySet[set] = states = new ulong[Words];
                    foreach (var (lo, hi) in _sets[set].Ranges)
                    {
                        boundaries.Add(lo);
                        if (hi < MaxCodePoint) boundaries.Add(hi + 1);
                    }
                }
                Set(states, k);
            }
            Boundaries = [.. boundaries];
            Takers = new ulong[Boundaries.Length * Words];
            foreach (var (set, states) in statesBySet)
                for (int i = 0; i < Boundaries.Length; i++)
                    if (_sets[set].Contains(Boundaries[i]))
                    {
                        var row = Takers.AsSpan(i * Words, Words);
                        for (int w = 0; w < Words; w++) row[w] |= states[w];
                    }
            AsciiInterval = new int[128];
            for (int c = 0, i = 0; c < 128; c++)
            {
                while (i + 1 < Boundaries.Length && Boundaries[i + 1] <= c) i++;
                AsciiInterval[c] = i;
            }
        }

        private void BuildForever(List<int> kept)
        {
            var viable = new ulong[Words];
            var matches = new ulong[Words];
            bool anyViable = false, anyMatches = false;
            for (int k = 0; k < kept.Count; k++)
            {
                var row = Follow.AsSpan(k * Words, Words);
                if (!_sets[_nodes[kept[k]].Set].IsAll || !Has(row, k)) continue;
                Set(viable, k);
                anyViable = true;
                if (!Has(row, Accept)) continue;
                Set(matches, k);
                anyMatches = true;
            }
            ViableForever = anyViable ? viable : null;
            MatchesForever = anyMatches ? matches : null;
        }

        private static void Set(Span<ulong> bits, int i) => bits[i >> 6] |= 1UL << i;
        private static bool Has(ReadOnlySpan<ulong> bits, int i) => (bits[i >> 6] & (1UL << i)) != 0;
    }
}
