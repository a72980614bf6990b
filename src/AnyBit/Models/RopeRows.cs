namespace AnyBit.Models;

/// <summary>
/// The row order of Q and K (weights and biases) for graphs that rotate adjacent pairs: within each head, Hugging
/// Face's halves layout (row i pairs with i + head_dim/2) becomes GGUF llama's adjacent layout (2i with 2i + 1), as
/// convert_hf_to_gguf.py's <c>LlamaModel.permute</c> does. Hugging Face folders of such architectures are loaded in
/// this order, so a folder and its GGUF conversion run the same computation, bit for bit.
/// </summary>
public static class RopeRows
{
    /// <summary>
    /// <paramref name="source"/>'s rows (<paramref name="rowLength"/> elements each; 1 for a bias) in adjacent-pair
    /// order, for <paramref name="heads"/> heads.
    /// </summary>
    public static T[] ToAdjacentPairs<T>(ReadOnlySpan<T> source, int heads, int rowLength)
    {
        int rows = source.Length / rowLength, headDim = rows / heads, half = headDim / 2;
        var result = new T[source.Length];
        for (int h = 0; h < heads; h++)
            for (int part = 0; part < 2; part++)
                for (int i = 0; i < half; i++)
                {
                    int from = h * headDim + part * half + i, to = h * headDim + 2 * i + part;
                    source.Slice(from * rowLength, rowLength).CopyTo(result.AsSpan(to * rowLength, rowLength));
                }
        return result;
    }
}
