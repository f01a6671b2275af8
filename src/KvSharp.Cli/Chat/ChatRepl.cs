using System.Text;
using KvSharp.Engine;
using KvSharp.Templates;

namespace KvSharp.Cli.Chat;

/// <summary>
/// The read-reply loop of `kvsharp chat`: one message per line, slash commands, streamed replies on stdout, and one
/// line per turn on stderr with what the cache saved (cached vs new prompt tokens), the time to the first token and
/// the decode speed. Ctrl-C stops the reply being written; at the prompt it quits. A turn the template rejects is
/// reported and skipped, and the exit code is then 1.
/// </summary>
internal sealed class ChatRepl(ChatConversation conversation, GenerationOptions generation, TextReader input, TextWriter output, TextWriter log, bool interactive)
{
    private const string Help = "commands: /reset (start over), /stats (cache and totals), /system TEXT (set the system prompt; /system alone clears it), /exit";

    private volatile bool _generating, _stopRequested;
    private bool _failed;
    private int _turns, _promptCached, _promptComputed, _generated;
    private TimeSpan _prefill, _decode;

    public int Run()
    {
        var session = conversation.Session;
        if (interactive)
            log.WriteLine($"[kvsharp] chat template: {conversation.Template.Name}; context {session.ContextLength} tokens. {Help}");
        Console.CancelKeyPress += OnCancel;
        try
        {
            while (true)
            {
                if (interactive)
                {
                    log.Write("> ");
                    log.Flush();
                }
                string? line = input.ReadLine();
                if (line == null) return _failed ? CliErrors.UserError : 0;
                line = line.TrimEnd('\r');
                if (line.Trim().Length == 0) continue;
                if (line.StartsWith('/'))
                {
                    if (!Command(line.Trim())) return _failed ? CliErrors.UserError : 0;
                    continue;
                }
                Turn(line);
            }
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    private void OnCancel(object? sender, ConsoleCancelEventArgs e)
    {
        if (!_generating) return; // at the prompt Ctrl-C quits as usual
        e.Cancel = true;
        _stopRequested = true;
    }

    /// <summary>Runs a slash command; false for /exit.</summary>
    private bool Command(string line)
    {
        int space = line.IndexOf(' ');
        string name = space < 0 ? line : line[..space];
        string argument = space < 0 ? "" : line[(space + 1)..].Trim();
        switch (name)
        {
            case "/exit" or "/quit":
                return false;
            case "/reset":
                conversation.Reset();
                log.WriteLine("[kvsharp] conversation reset: the cache is empty" + (conversation.SystemPrompt != null ? " (the system prompt stays)" : ""));
                return true;
            case "/system":
                conversation.SetSystemPrompt(argument);
                log.WriteLine(argument.Length > 0
                    ? "[kvsharp] system prompt set; the next turn recomputes from the first token it changes"
                    : "[kvsharp] system prompt cleared");
                return true;
            case "/stats":
                Stats();
                return true;
            case "/help":
                log.WriteLine("[kvsharp] " + Help);
                return true;
            default:
                log.WriteLine($"[kvsharp] unknown command {name}; {Help}");
                return true;
        }
    }

    private void Turn(string userText)
    {
        var session = conversation.Session;
        PromptResume? begun;
        int needed;
        try
        {
            begun = conversation.BeginTurn(userText, out needed);
        }
        catch (TemplateException e)
        {
            // One bad turn (a template's raise_exception) is reported and skipped; the conversation goes on.
            log.WriteLine($"error: {e.Message} (the message was not added)");
            _failed = true;
            return;
        }
        if (begun is null)
        {
            log.WriteLine($"[kvsharp] the context is full: the conversation with this message needs {needed} tokens and leaves no room for a reply in " +
                $"the context of {session.ContextLength} tokens. /reset starts over; --context N gives a longer context");
            return;
        }
        var cost = begun.Value;
        var tokens = cost.Pending;
        var reply = new StringBuilder();
        // A thinking model's reasoning (think tags, gpt-oss's analysis) goes to stderr, its answer to stdout.
        var shown = new ShownReply(conversation.Splitting?.Start(), output, log);
        _generating = true;
        _stopRequested = false;
        try
        {
            foreach (string piece in session.GenerateTokens(tokens, generation))
            {
                reply.Append(piece);
                shown.Append(piece);
                if (_stopRequested) break;
            }
        }
        finally
        {
            _generating = false;
        }
        shown.End();
        conversation.EndTurn(reply.ToString());

        if (_stopRequested)
        {
            log.WriteLine("[kvsharp] reply stopped");
            return;
        }
        var s = session.LastStats!;
        _turns++;
        _promptCached += s.ReusedTokens;
        _promptComputed += s.PrefilledTokens;
        _generated += s.GeneratedTokens;
        _prefill += s.PrefillTime;
        _decode += s.DecodeTime;
        log.WriteLine($"[kvsharp] prompt: {s.ReusedTokens} cached + {s.PrefilledTokens} new tokens" +
            (cost.Rewound > 0 ? $" (rewound {cost.Rewound} tokens the template renders differently now)" : "") +
            $"; first token {s.PrefillTime.TotalMilliseconds:F1} ms; {s.GeneratedTokens} tokens at {s.DecodeTokensPerSecond:F1} tok/s; " +
            $"context {session.Tokens.Count}/{session.ContextLength}");
        if (s.FinishReason == FinishReason.ContextFull)
            log.WriteLine($"[kvsharp] the context of {session.ContextLength} tokens is full: the reply was cut off. /reset starts a new conversation; " +
                "--context N gives a longer one");
    }

    private void Stats()
    {
        var session = conversation.Session;
        var cache = session.Cache;
        int promptTotal = _promptCached + _promptComputed;
        log.WriteLine($"[kvsharp] template {conversation.Template.Name}; {conversation.Messages.Count} messages, {_turns} replies; " +
            $"context {session.Tokens.Count}/{session.ContextLength} tokens, {cache.Length} cached");
        log.WriteLine($"[kvsharp] KV cache ({cache.Format.Name}): {cache.BytesPerToken:N0} bytes/token, {KvMemory.Size(cache.UsedBytes)} used, {KvMemory.Size(cache.AllocatedBytes)} allocated");
        log.WriteLine($"[kvsharp] prompt tokens: {_promptCached} from the cache, {_promptComputed} computed" +
            (promptTotal > 0 ? $" ({100.0 * _promptCached / promptTotal:F0}% reused)" : "") +
            $"; {_generated} generated; prefill {_prefill.TotalMilliseconds:F0} ms, decode {_decode.TotalMilliseconds:F0} ms");
    }
}
