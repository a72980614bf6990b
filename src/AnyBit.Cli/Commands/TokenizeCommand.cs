using System.CommandLine;
using AnyBit.Models;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit tokenize</c>: print the ids (and pieces) a model's tokenizer gives for a text.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var text = new Option<string>("--text", "-t") { Description = "Text to tokenize", Required = true };
        var noSpecial = new Option<bool>("--no-special") { Description = "Do not add BOS/EOS" };
        var json = CommonOptions.Json();
        var cmd = new Command("tokenize", "Tokenize text with the model's tokenizer") { model, tokenizer, text, noSpecial, json };
        cmd.SetAction(parse =>
        {
            var tok = Load(parse.GetValue(model)!, parse.GetValue(tokenizer));
            var ids = tok.Encode(parse.GetValue(text)!, addSpecial: !parse.GetValue(noSpecial));
            if (parse.GetValue(json))
                CommonOptions.WriteJson(new { Ids = ids, Pieces = ids.Select(tok.Piece).ToArray() });
            else
                Console.Out.WriteLine(string.Join(" ", ids));
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// The tokenizer of a model path. A tokenizer-only folder (tokenizer.json without config.json, as tokenizers are
    /// published) needs no model: it is read alone, without the weights ModelLoader would look for.
    /// </summary>
    private static AnyBit.Text.ITokenizer Load(string path, string? tokenizerPath)
    {
        string resolved = ModelLoader.Resolve(path);
        if (AnyBit.Text.TokenizerFolder.IsTokenizerOnly(resolved))
            return tokenizerPath is null ? AnyBit.Text.TokenizerFolder.Open(resolved).Tokenizer : AnyBit.Text.TokenizerJson.Load(tokenizerPath, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!, "tokenizer_config.json"));
        using var files = ModelLoader.Open(path, new LoadOptions { TokenizerPath = tokenizerPath });
        return files.Tokenizer ?? throw new AnyBitException($"{files.Path}: the model has no tokenizer; pass --tokenizer FILE");
    }
}
