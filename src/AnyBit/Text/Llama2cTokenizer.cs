using System.Buffers.Binary;
using System.Text;

namespace AnyBit.Text;

/// <summary>
/// llama2.c's tokenizer.bin: int32 max_token_length, then per token a float32 score, an int32 byte length and the
/// UTF-8 bytes. Pieces use a plain space (the exporter replaced ▁), ids 0/1/2 are unk/BOS/EOS, and byte tokens
/// "&lt;0xXX&gt;" sit at ids 3..258.
/// </summary>
public static class Llama2cTokenizer
{
    public static ScoredSentencePieceTokenizer Load(string path, int vocabSize)
    {
        if (!File.Exists(path)) throw new InvalidModelFileException(path, "file not found");
        byte[] data = File.ReadAllBytes(path);
        InvalidModelFileException Bad(string p) => new(path, p);
        if (data.Length < 4) throw Bad("too short for a llama2.c tokenizer");
        int maxLen = BinaryPrimitives.ReadInt32LittleEndian(data);
        if (maxLen <= 0 || maxLen > 1 << 16) throw Bad($"max_token_length {maxLen} is invalid (not a tokenizer.bin?)");
        var pieces = new string[vocabSize];
        var scores = new float[vocabSize];
        int p = 4;
        for (int i = 0; i < vocabSize; i++)
        {
            if (p + 8 > data.Length) throw Bad($"ends after {i} of {vocabSize} tokens: truncated, or the model's vocabulary is larger than this tokenizer's");
            scores[i] = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(p));
            int len = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(p + 4));
            p += 8;
            if (len < 0 || len > maxLen || p + len > data.Length) throw Bad($"token {i} has invalid length {len}");
            pieces[i] = Encoding.UTF8.GetString(data, p, len);
            p += len;
        }
        var control = new bool[vocabSize];
        for (int i = 0; i < Math.Min(3, vocabSize); i++) control[i] = true;
        return new ScoredSentencePieceTokenizer("llama2.c tokenizer.bin (SentencePiece BPE)", pieces, scores, control, " ",
            addSpacePrefix: true, bos: 1, eos: 2, addBos: true, addEos: false, unk: 0);
    }
}
