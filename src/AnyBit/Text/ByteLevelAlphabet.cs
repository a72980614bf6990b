namespace AnyBit.Text;

/// <summary>
/// GPT-2's byte-to-unicode table: every byte gets a printable character, so byte-level BPE can work on strings.
/// Printable Latin-1 bytes map to themselves; the other 68 map to U+0100 upwards in byte order.
/// </summary>
public static class ByteLevelAlphabet
{
    public static readonly char[] ByteToChar = Build();
    private static readonly Dictionary<char, byte> CharToByteMap = ByteToChar.Select((c, i) => (c, (byte)i)).ToDictionary(x => x.c, x => x.Item2);

    private static char[] Build()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    public static bool TryCharToByte(char c, out byte b) => CharToByteMap.TryGetValue(c, out b);
}
