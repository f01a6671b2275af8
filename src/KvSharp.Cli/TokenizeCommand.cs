using System.CommandLine;
using KvSharp.Gguf;
using KvSharp.Llama2c;
using KvSharp.Tokenization;

namespace KvSharp.Cli;

/// <summary>`kvsharp tokenize`: print token ids. Works on vocab-only GGUF files (no weights are loaded).</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "GGUF file (a vocab-only file is enough)" };
        var tokenizer = CommonOptions.Tokenizer();
        var vocab = new Option<int?>("--vocab-size") { Description = "check that a llama2.c tokenizer.bin holds this many tokens (default: read them all)" };
        var text = new Option<string>("--text") { Description = "text to tokenize", Required = true };
        var noBos = new Option<bool>("--no-bos") { Description = "do not add BOS/EOS even if the model asks for them" };
        var noSpecial = new Option<bool>("--no-parse-special") { Description = "treat special-token text like <s> as plain text" };
        var command = new Command("tokenize", "print the token ids of a text") { model, tokenizer, vocab, text, noBos, noSpecial };
        command.SetAction(r => CliErrors.Run(() =>
        {
            string? modelPath = r.GetValue(model), tokPath = r.GetValue(tokenizer);
            ITokenizer tok;
            GgufFile? gguf = null;
            try
            {
                if (modelPath != null && tokPath != null)
                    throw new ArgumentException("give --model (a GGUF file) or --tokenizer (a llama2.c tokenizer.bin), not both");
                if (modelPath != null && r.GetValue(vocab) is { } size)
                    throw new ArgumentException($"--vocab-size {size} only checks a llama2.c --tokenizer; a GGUF --model says its own vocabulary size");
                if (modelPath != null)
                {
                    gguf = GgufFile.Open(modelPath);
                    tok = TokenizerFactory.FromGguf(gguf);
                }
                else if (tokPath != null)
                {
                    tok = new SentencePieceTokenizer(Llama2cTokenizerReader.Read(tokPath, r.GetValue(vocab)));
                }
                else
                {
                    throw new ArgumentException("give --model (a GGUF file) or --tokenizer (a llama2.c tokenizer.bin)");
                }
                var ids = tok.Encode(r.GetValue(text)!, addSpecial: !r.GetValue(noBos), parseSpecial: !r.GetValue(noSpecial));
                Console.Out.WriteLine(string.Join(' ', ids));
                return 0;
            }
            finally
            {
                gguf?.Dispose();
            }
        }));
        return command;
    }
}
