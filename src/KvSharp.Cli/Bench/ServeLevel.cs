using System.Text.Json.Nodes;

namespace KvSharp.Cli.Bench;

/// <summary>One client count's run of the serve scenario: every request's measurement and the wall time of the whole.</summary>
internal sealed class ServeLevel(int clients, int turns, IReadOnlyList<(int Client, int Turn, ServeResponse Response)> requests, double seconds)
{
    public int Clients => clients;
    public int Completed => requests.Count(r => r.Response.Ok);
    /// <summary>Requests that got an error, plus the turns their conversations then never sent.</summary>
    public int Failed => clients * turns - Completed;
    public long GeneratedTokens => Ok.Sum(r => (long)r.CompletionTokens);
    public double TokensPerSecond => seconds > 0 ? GeneratedTokens / seconds : 0;
    public double TtftP50 => Percentile(Ok.Select(r => r.FirstTokenMs), 50);
    public double TtftP99 => Percentile(Ok.Select(r => r.FirstTokenMs), 99);
    public double ItlP50 => Percentile(Ok.SelectMany(r => r.GapsMs), 50);
    public double ItlP99 => Percentile(Ok.SelectMany(r => r.GapsMs), 99);
    /// <summary>Cached over prompt tokens of the requests that report cached tokens; null when none does.</summary>
    public Ratio HitRate => HitRateOf(Ok);

    /// <summary>Where the server reported its cached prompt tokens (<see cref="ServeResponse.FromUsage"/> or <see cref="ServeResponse.FromTimings"/>); null: nowhere.</summary>
    public string? CachedFrom => Ok.Select(r => r.CachedFrom).FirstOrDefault(f => f != null);

    /// <summary>The hit rate in percent, for the table.</summary>
    public Ratio HitPercent => new(HitRate.Numerator * 100, HitRate.Denominator);

    private IEnumerable<ServeResponse> Ok => requests.Select(r => r.Response).Where(r => r.Ok);

    private static Ratio HitRateOf(IEnumerable<ServeResponse> responses)
    {
        var reporting = responses.Where(r => r.CachedTokens != null).ToList();
        return reporting.Count == 0 ? new Ratio(0, 0) : new Ratio(reporting.Sum(r => (double)r.CachedTokens!.Value), reporting.Sum(r => (double)r.PromptTokens));
    }

    /// <summary>Linear interpolation between closest ranks; NaN-free: 0 when there is nothing to rank.</summary>
    public static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return 0;
        double rank = p / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    public JsonObject Json()
    {
        var perTurn = new JsonArray();
        for (int t = 0; t < turns; t++)
        {
            var ok = requests.Where(r => r.Turn == t && r.Response.Ok).Select(r => r.Response).ToList();
            perTurn.Add(new JsonObject
            {
                ["turn"] = t + 1,
                ["completed"] = ok.Count,
                ["prompt_tokens"] = ok.Sum(r => r.PromptTokens),
                ["cached_tokens"] = ok.Any(r => r.CachedTokens != null) ? ok.Sum(r => r.CachedTokens ?? 0) : null,
                ["prefix_hit_rate"] = HitRateOf(ok).Json,
                ["ttft_ms_p50"] = Percentile(ok.Select(r => r.FirstTokenMs), 50),
            });
        }
        return new JsonObject
        {
            ["clients"] = clients,
            ["requests_completed"] = Completed,
            ["requests_failed"] = Failed,
            ["errors"] = new JsonArray(requests.Where(r => !r.Response.Ok).Select(r => r.Response.Error).Distinct().Take(5).Select(e => (JsonNode?)e).ToArray()),
            ["ttft_ms_p50"] = TtftP50,
            ["ttft_ms_p99"] = TtftP99,
            ["itl_ms_p50"] = ItlP50,
            ["itl_ms_p99"] = ItlP99,
            ["generated_tokens"] = GeneratedTokens,
            ["seconds"] = seconds,
            ["tokens_per_s"] = TokensPerSecond,
            ["prompt_tokens"] = Ok.Sum(r => (long)r.PromptTokens),
            ["prefix_hit_rate"] = HitRate.Json, // null: the server reports no cached tokens
            ["cached_tokens_from"] = CachedFrom,
            ["usage_reported"] = Ok.All(r => r.UsageReported),
            ["turns"] = perTurn,
        };
    }
}
