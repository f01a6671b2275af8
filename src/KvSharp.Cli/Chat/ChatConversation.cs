using KvSharp.Engine;
using KvSharp.Templates;
using KvSharp.Tokenization;

namespace KvSharp.Cli.Chat;

/// <summary>
/// A terminal conversation over one <see cref="InferenceSession"/>: the messages, the template that renders them, and
/// the KV cache kept between turns. Each turn renders the whole conversation and tokenizes it, and
/// <see cref="PromptResume.Resume"/> keeps the longest token prefix the session already holds and computes only the rest.
/// </summary>
internal sealed class ChatConversation(InferenceSession session, ChatTemplate template, ITokenizer tokenizer)
{
    private readonly List<ChatMessage> _messages = [];

    public InferenceSession Session { get; } = session;
    public ChatTemplate Template { get; } = template;
    public IReadOnlyList<ChatMessage> Messages => _messages;
    public string? SystemPrompt => _messages.Count > 0 && _messages[0].Role == "system" ? _messages[0].Content : null;

    /// <summary>
    /// How the reply to the turn begun last comes apart into reasoning and answer (think tags, gpt-oss's Harmony
    /// messages); null where it is all answer.
    /// </summary>
    public ReplySplitting? Splitting { get; private set; }

    /// <summary>Sets, replaces or (with null or "") removes the system prompt; the next turn re-renders from where it changed.</summary>
    public void SetSystemPrompt(string? text)
    {
        if (SystemPrompt != null) _messages.RemoveAt(0);
        if (!string.IsNullOrEmpty(text)) _messages.Insert(0, ChatMessage.System(text));
    }

    /// <summary>Forgets every turn (the system prompt stays) and empties the cache.</summary>
    public void Reset()
    {
        string? system = SystemPrompt;
        _messages.Clear();
        SetSystemPrompt(system);
        Session.Reset();
    }

    /// <summary>
    /// Adds the user's message and brings the session to the common prefix of its tokens and the new rendering.
    /// Returns the tokens to feed, or null (the message is dropped again) when the conversation no longer fits the context.
    /// </summary>
    /// <exception cref="TemplateException">The template failed on the conversation; the message is dropped again.</exception>
    public PromptResume? BeginTurn(string userText, out int needed)
    {
        _messages.Add(ChatMessage.User(userText));
        int[] all;
        try
        {
            var rendered = Template.Render(_messages, addGenerationPrompt: true, tokenizer);
            Splitting = ReplySplitting.Of(Template, rendered.Text);
            all = rendered.Tokenize(tokenizer);
        }
        catch (TemplateException)
        {
            _messages.RemoveAt(_messages.Count - 1); // the template refused it (raise_exception): the turn never happened
            throw;
        }
        needed = all.Length;
        // Room for the prompt and at least one generated token.
        if (all.Length >= Session.ContextLength)
        {
            _messages.RemoveAt(_messages.Count - 1);
            return null;
        }
        return PromptResume.Resume(Session, all);
    }

    /// <summary>
    /// Records the reply (what was generated, possibly cut off) as the assistant's message: its answer as the content
    /// and its reasoning apart, as templates expect them back (gpt-oss's refuses Harmony markers in a content).
    /// </summary>
    public void EndTurn(string reply) => _messages.Add(Splitting?.Assistant(reply) ?? ChatMessage.Assistant(reply));
}
