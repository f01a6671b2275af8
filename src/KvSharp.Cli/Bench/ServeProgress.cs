namespace KvSharp.Cli.Bench;

/// <summary>The serve scenario's progress line, updated from every client's task (<see cref="BenchLog"/> is not thread-safe).</summary>
internal sealed class ServeProgress(BenchLog log)
{
    private readonly Lock _lock = new();
    private string _what = "";
    private int _done, _total;

    public void Start(string what, int total)
    {
        lock (_lock)
        {
            (_what, _done, _total) = (what, 0, total);
            log.Progress($"serve: {what}");
        }
    }

    public void RequestDone()
    {
        lock (_lock)
        {
            _done++;
            log.Progress($"serve: {_what}: {_done}/{_total} requests", force: _done == _total);
        }
    }
}
