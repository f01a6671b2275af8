using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;

namespace KvSharp.Tokenization;

/// <summary>
/// Splits text into words before byte-level BPE, with the regex set llama.cpp uses for each
/// <c>tokenizer.ggml.pre</c>. Each regex splits every piece the previous one produced; matches and the
/// text between matches both become pieces (llama.cpp's unicode_regex_split).
/// </summary>
/// <remarks>
/// llama.cpp matches code points; .NET regexes see UTF-16 units, so a character outside the BMP would be two
/// "surrogate" units (category Cs) and an optional single-character class could split the pair. When the text
/// has surrogates, the regexes run on a proxy string with one BMP stand-in of the same Unicode category per
/// code point, and the pieces are mapped back to the original text.
/// </remarks>
public sealed class PreTokenizer
{
    private const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    // llama.cpp's adaptation of the llama3 tokenizer.json regex: (?i:...) contractions spelled out.
    private const string Llama3 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string Qwen2 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // llama.cpp's adaptation of the tekken / gpt-4o tokenizer.json regexes: an upper-case run is any letter but a-z, a
    // lower-case run any letter but A-Z (std::regex has no \p{Lu}); kept as llama.cpp matches them.
    private const string Tekken = @"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string Contraction = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
    private const string Gpt4o = @"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+" + Contraction + @"?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*" + Contraction + @"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    // DeepSeek LLM's letter class, without its few ranges outside the BMP (Deseret, Osage, Old Hungarian, Warang Citi,
    // Adlam): such a letter reaches the regex as a BMP stand-in of its category (BuildProxy), which the class holds.
    private const string DeepSeekLetters = @"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ]+";

    private static readonly ConcurrentDictionary<string, Regex> RegexCache = new(StringComparer.Ordinal);

    private readonly Regex[] _regexes;

    /// <summary>The pre-tokenizer family actually used (e.g. "gpt2", "llama3", "qwen2", "default").</summary>
    public string Kind { get; }

    /// <summary>llama3-style: a word that is itself a vocabulary token is taken whole, without merges.</summary>
    public bool IgnoreMerges { get; }

    /// <summary>Whether llama.cpp defaults add_bos to true for this pre-tokenizer.</summary>
    public bool AddBosByDefault { get; }

    /// <summary>The regexes, in the order they are applied.</summary>
    public IReadOnlyList<string> Patterns { get; }

    private PreTokenizer(string kind, string[] patterns, bool ignoreMerges = false, bool addBos = false)
    {
        Kind = kind;
        Patterns = patterns;
        IgnoreMerges = ignoreMerges;
        AddBosByDefault = addBos;
        _regexes = Array.ConvertAll(patterns, p => RegexCache.GetOrAdd(p, static q =>
            new Regex(q, RegexOptions.CultureInvariant | RegexOptions.Compiled)));
    }

    /// <summary>The pre-tokenizer for a <c>tokenizer.ggml.pre</c> value (null or "" = llama.cpp's default set).</summary>
    public static PreTokenizer ForName(string? pre) => pre switch
    {
        null or "" or "default" => new("default", [@"[\p{P}\$\+<=>\^~\|]+", Gpt2, @"\p{N}+", "[0-9][0-9][0-9]"]),
        "llama3" or "llama-v3" or "llama-bpe" or "falcon3" => new("llama3", [Llama3], ignoreMerges: true, addBos: true),
        "dbrx" or "smaug-bpe" or "chatglm-bpe" or "glm4" => new("llama3", [Llama3]),
        "qwen2" or "qwen2.5" or "qwen-2.5" or "deepseek-r1-qwen" or "stablelm2" or "megrez" or "hunyuan" => new("qwen2", [Qwen2]),
        "gpt-2" or "phi-2" or "mpt" or "olmo" or "jais" or "trillion" or "roberta-bpe" or "gigachat"
            or "jina-es" or "jina-de" or "jina-v1-en" or "jina-v2-es" or "jina-v2-de" or "jina-v2-code" => new("gpt2", [Gpt2]),
        "starcoder" or "refact" or "command-r" or "smollm" or "codeshell" or "exaone" or "minerva-7b" => new("starcoder", [@"\p{N}", Gpt2]),
        "falcon" => new("falcon", [@"[\p{P}\$\+<=>\^~\|`]+", Gpt2, "[0-9][0-9][0-9]"]),
        "deepseek-coder" => new("deepseek-coder", [@"[\r\n]", @"\s?\p{L}+", @"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", @"\p{N}"]),
        "poro-chat" or "bloom" or "gpt3-finnish" => new("bloom", [@" ?[^(\s|.,!?…。，、।۔،)]+"]),
        "viking" => new("viking", [@" ?[^(\s|.,!?…。，、।۔،)]+", @"\p{N}"]),
        "tekken" => new("tekken", [Tekken], ignoreMerges: true, addBos: true),
        "gpt-4o" or "llama4" => new("gpt-4o", [Gpt4o]),
        "deepseek-llm" => new("deepseek-llm", [@"[\r\n]", DeepSeekLetters, @"\s?[!-/:-~！-／：-～‘-‟　-。]+", @"\s+\z", "[一-龥ࠀ-一가-퟿]+", @"\p{N}+"]),
        "deepseek-v3" => new("deepseek-v3", [@"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
            @"[!""#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]),
        "chameleon" => new("chameleon", ["<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\t\n]|    |  )", @"\p{N}",
            @"[\p{P}!-/:-@\[-`{-~]", Gpt2], addBos: true),
        // Digits in runs, then each run split before every group of three from its end (zero-length matches split).
        "superbpe" => new("superbpe", [@"\p{N}+", @"(?=(\d{3})+(?!\d))"]),
        "bailingmoe" => new("bailingmoe", [@"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"]),
        "seed-coder" => new("seed-coder", [Contraction + @"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"]),
        // llama.cpp refuses unknown names; we fall back to the plain GPT-2 split, which is what most
        // byte-level BPE vocabularies were trained with, rather than refuse to load the model.
        _ => new("gpt2", [Gpt2]),
    };

    /// <summary>Appends (start, length) word ranges of <paramref name="text"/> to <paramref name="words"/>.</summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> words)
    {
        if (text.IsEmpty) return;
        int[]? map = null;
        ReadOnlySpan<char> subject = text;
        if (text.ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            subject = BuildProxy(text, out map);
        }

        var pieces = new List<(int Start, int Length)> { (0, subject.Length) };
        var next = new List<(int Start, int Length)>();
        foreach (var regex in _regexes)
        {
            next.Clear();
            foreach (var (start, length) in pieces)
            {
                int pos = 0;
                foreach (var m in regex.EnumerateMatches(subject.Slice(start, length)))
                {
                    // An empty match only marks where a piece ends (superbpe's groups of three digits).
                    if (m.Length == 0)
                    {
                        if (m.Index > pos) next.Add((start + pos, m.Index - pos));
                        pos = Math.Max(pos, m.Index);
                        continue;
                    }
                    if (m.Index > pos) next.Add((start + pos, m.Index - pos));
                    next.Add((start + m.Index, m.Length));
                    pos = m.Index + m.Length;
                }
                if (pos < length) next.Add((start + pos, length - pos));
            }
            (pieces, next) = (next, pieces);
        }

        foreach (var (start, length) in pieces)
        {
            if (map is null) words.Add((start, length));
            else words.Add((map[start], map[start + length] - map[start]));
        }
    }

    // One BMP character per code point, of the same general category, and the map from proxy index to
    // original index (with one extra entry for the end).
    private static string BuildProxy(ReadOnlySpan<char> text, out int[] map)
    {
        var proxy = new char[text.Length];
        var indices = new List<int>(text.Length + 1);
        int p = 0;
        for (int i = 0; i < text.Length;)
        {
            indices.Add(i);
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                proxy[p++] = StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, text[i + 1])));
                i += 2;
            }
            else
            {
                // A lone surrogate is encoded as U+FFFD (a symbol), so classify it as one.
                proxy[p++] = char.IsSurrogate(c) ? '\uFFFD' : c;
                i++;
            }
        }
        indices.Add(text.Length);
        map = indices.ToArray();
        return new string(proxy, 0, p);
    }

    private static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u00C0',
        UnicodeCategory.LowercaseLetter => '\u00E0',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u00AA',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
            or UnicodeCategory.OtherSymbol => '\u00A9',
        _ => '\uE000', // format, private use, unassigned: none of letter, number, punctuation, symbol, space
    };
}
