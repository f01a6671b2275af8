using System.Text;
using System.Text.Json;
using KvSharp.Engine;
using KvSharp.Server.Completions;
using KvSharp.Server.Errors;
using KvSharp.Server.Hosting;
using KvSharp.Templates;
using Microsoft.AspNetCore.Http;

namespace KvSharp.Server.Continuations;

/// <summary>
/// A completion's prompt that continues an earlier completion of this server (the request's <c>continues</c>: that
/// response's id; a chat completion's rendered prompt likewise, <see cref="TokenizeChat"/>): when the prompt text starts with the earlier prompt's text and the text generated for it, the
/// prompt's ids are the earlier prompt's ids, the ids the model generated, then the rest of the text tokenized as a
/// continuation. Re-tokenizing a reply's text does not always give back the ids the model generated (a BPE vocabulary
/// has several spellings of most text), and from the first token where it differs nothing after it is a prefix-cache
/// hit; the generated ids are exactly what the cache holds. Both spell the same text, so the prompt says what the
/// client sent; a server that no longer holds (or never held) the completion tokenizes the text whole, as without
/// the field: the ids it generated are this server's to know. Like vLLM's and SGLang's token-level prefix matching, the
/// conversation then matches the cached chain wherever re-tokenizing would not.
/// </summary>
internal static class PromptContinuation
{
    /// <summary>On a request with <c>continues</c>: how many prompt tokens came from the completion it continues (0: none, the text was tokenized whole).</summary>
    public const string ContinuedHeader = "x-kvsharp-continued";

    /// <summary>Says in <see cref="ContinuedHeader"/> how many prompt tokens were continued, on a request that asked to continue one.</summary>
    public static void Report(HttpResponse response, string? continues, int continued)
    {
        if (continues != null) response.Headers[ContinuedHeader] = continued.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The prompt's ids, and how many of them came from the completion it continues (0 when none did).</summary>
    public static (IReadOnlyList<int> Tokens, int Continued) Tokenize(CompletionRequest body, EngineService served)
    {
        if (body.Continues is not { } id) return (CompletionsEndpoint.PromptTokens(body.Prompt, served.Model), 0);
        string text = TextOf(body.Prompt)
            ?? throw ApiError.InvalidValue("continues", "continues needs a text prompt (a prompt of token ids already is the ids to use); leave it out");
        if (!served.Continuations.TryGet(id, out string spelled, out int[] ids)) return (CompletionsEndpoint.PromptTokens(body.Prompt, served.Model), 0);
        if (!text.StartsWith(spelled, StringComparison.Ordinal))
            throw ApiError.InvalidValue("continues", $"the prompt does not start with the prompt and text of completion '{id}'; send that conversation unchanged before what follows it, or leave continues out");
        string rest = text[spelled.Length..];
        // The text after it, tokenized as llama-server tokenizes a completion prompt's (special-token text parsed), minus BOS.
        int[] more = rest.Length == 0 ? [] : served.Model.Tokenizer.EncodeContinuation(rest, parseSpecial: true);
        return ([.. ids, .. more], ids.Length);
    }

    /// <summary>
    /// A chat prompt's ids, and how many came from the chat completion <paramref name="continues"/> names: its prompt's
    /// ids and as many of its reply's as spell where the new rendering still agrees with it. A chat template may render
    /// an earlier turn differently once a later one follows (a reply's trailing whitespace trimmed, reasoning dropped),
    /// which the client cannot help: the ids stop at the last token boundary before the renderings part, and the text
    /// from there is tokenized as the rest. A conversation that parts from that request's before its reply begins is
    /// tokenized whole; the header then says 0.
    /// </summary>
    public static (IReadOnlyList<int> Tokens, int Continued) TokenizeChat(string? continues, RenderedChat rendered, EngineService served)
    {
        var tokenizer = served.Model.Tokenizer;
        if (continues is { } id && served.Continuations.TryGet(id, out string spelled, out int[] ids, out var cuts))
        {
            int agree = rendered.Prompt.AsSpan().CommonPrefixLength(spelled);
            // The longest cut within what both spell alike; the shortest is the prompt's own end.
            for (int c = cuts.Length - 1; c >= 0; c--)
                if (cuts[c].Chars <= agree)
                    return ([.. ids.AsSpan(0, cuts[c].Tokens), .. rendered.TokenizeFrom(tokenizer, cuts[c].Chars)], cuts[c].Tokens);
        }
        return (rendered.Tokenize(tokenizer), 0);
    }

    /// <summary>
    /// Keeps a finished completion of one choice under its response id: its prompt's ids and text, then the longest run
    /// of the ids it generated that spell the start of the text it returned, up to a character boundary. That is all of
    /// them, except when a stop string cut the text, a token ended inside a character (the text then holds U+FFFD, not
    /// the bytes the ids spell), or a control token (end of generation) spells nothing; the text after the run is then
    /// tokenized as the continuation's own. Even an empty run keeps the prompt's ids: a conversation whose earlier turns
    /// were continued stays on the ids the cache holds.
    /// </summary>
    public static void Remember(EngineService served, string responseId, string promptText, RequestHandle handle)
    {
        if (handle.Status != RequestStatus.Finished || handle.Request.SampleCount != 1) return;
        var tokenizer = served.Model.Tokenizer;
        var generated = handle.OutputTokens[0];
        string text = handle.OutputText[0];
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        int prompt = handle.Request.PromptTokens.Count, offset = 0, kept = 0, keptBytes = 0, keptChars = 0;
        // Where the ids may be cut (a later rendering may part from this reply's text): after the prompt, and after
        // each reply token that ends a character.
        var cuts = new List<Cut> { new(prompt, promptText.Length) };
        for (int i = 0; i < generated.Count; i++)
        {
            var piece = tokenizer.TokenPiece(generated[i]);
            if (piece.IsEmpty || !bytes.AsSpan(offset).StartsWith(piece)) break;
            offset += piece.Length;
            // A token may end inside a character (its bytes are split over several tokens): keep only whole characters.
            if (offset != bytes.Length && (bytes[offset] & 0xC0) == 0x80) continue;
            keptChars += Encoding.UTF8.GetCharCount(bytes, keptBytes, offset - keptBytes);
            (kept, keptBytes) = (i + 1, offset);
            cuts.Add(new Cut(prompt + kept, promptText.Length + keptChars));
        }
        string spelled = promptText + Encoding.UTF8.GetString(bytes, 0, keptBytes);
        served.Continuations.Remember(responseId, spelled, [.. handle.Request.PromptTokens, .. generated.Take(kept)], [.. cuts]);
    }

    /// <summary>The prompt's text: a string, or a list holding one; null for token ids.</summary>
    public static string? TextOf(JsonElement prompt) => prompt.ValueKind switch
    {
        JsonValueKind.String => prompt.GetString(),
        JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String => prompt[0].GetString(),
        _ => null,
    };
}
