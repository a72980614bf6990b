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
            using var files = ModelLoader.Open(parse.GetValue(model)!, new LoadOptions { TokenizerPath = parse.GetValue(tokenizer) });
            var tok = files.Tokenizer ?? throw new AnyBitException($"{files.Path}: the model has no tokenizer; pass --tokenizer FILE");
            var ids = tok.Encode(parse.GetValue(text)!, addSpecial: !parse.GetValue(noSpecial));
            if (parse.GetValue(json))
                CommonOptions.WriteJson(new { Ids = ids, Pieces = ids.Select(tok.Piece).ToArray() });
            else
                Console.Out.WriteLine(string.Join(" ", ids));
            return 0;
        });
        return cmd;
    }
}
