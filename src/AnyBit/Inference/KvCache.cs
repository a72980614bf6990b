using AnyBit.Models;

namespace AnyBit.Inference;

/// <summary>
/// A sequence's KV cache when it is not the plain float32 one: the key and value stores (<see cref="KvStore"/>) and
/// the rotation (<see cref="KvRotation"/>) of the sides that asked for it. The session writes each new position's
/// heads here, rotates its queries to match, and brackets each layer's attention with <see cref="BeginChunk"/> and <see cref="EndChunk"/>.
/// </summary>
public sealed class KvCache : IDisposable
{
    internal KvCache(KvCacheOptions options, ModelConfig config, int contextSize)
    {
        options.Validate(config, contextSize);
        Options = options;
        HeadDim = config.HeadDim;
        Keys = new KvStore(options.Key, config.NumLayers, config.NumKvHeads, config.HeadDim, contextSize, options.Window);
        try
        {
            Values = new KvStore(options.Value, config.NumLayers, config.NumKvHeads, config.HeadDim, contextSize, options.Window);
        }
        catch
        {
            Keys.Dispose();
            throw;
        }
        if (options.Key.Rotated || options.Value.Rotated) Rotation = new KvRotation(config.NumLayers, config.NumKvHeads, config.HeadDim);
    }

    public KvCacheOptions Options { get; }
    public int HeadDim { get; }
    internal KvStore Keys { get; }
    internal KvStore Values { get; }
    /// <summary>The heads' rotation, where keys or values are rotated.</summary>
    public KvRotation? Rotation { get; }

    /// <summary>Rotates a query head (in place) as its KV head's keys are rotated; nothing when keys are not.</summary>
    public void PrepareQuery(int layer, int kvHead, Span<float> query)
    {
        if (Options.Key.Rotated) Rotation!.Rotate(layer, kvHead, query);
    }

    /// <summary>Stores a new position's key and value heads (rotating them in place first where asked).</summary>
    public void Write(int layer, int kvHead, int position, Span<float> key, Span<float> value)
    {
        if (Options.Key.Rotated) Rotation!.Rotate(layer, kvHead, key);
        if (Options.Value.Rotated) Rotation!.Rotate(layer, kvHead, value);
        Keys.Write(layer, kvHead, position, key);
        Values.Write(layer, kvHead, position, value);
    }

    /// <summary>A head's attention output back in the model's basis, where values are rotated.</summary>
    public void FinishOutput(int layer, int kvHead, Span<float> output)
    {
        if (Options.Value.Rotated) Rotation!.Unrotate(layer, kvHead, output);
    }

    /// <summary>
    /// A layer is about to attend with the new positions [<paramref name="first"/>, first + <paramref name="count"/>),
    /// whose (rotated) keys and values are rows of <paramref name="stride"/> floats at <paramref name="keys"/> and
    /// <paramref name="values"/>, KV head h at + h·headDim: they are read there, the positions that left the window
    /// are quantized, and after the attention <see cref="EndChunk"/> keeps the newest in the window.
    /// </summary>
    public unsafe void BeginChunk(int layer, int first, int count, float* keys, float* values, int stride)
    {
        Keys.BeginChunk(first, count, keys, stride);
        Values.BeginChunk(first, count, values, stride);
        Keys.Advance(layer, first + count);
        Values.Advance(layer, first + count);
    }

    /// <summary>After the layer's attention: the chunk's rows still in the window are copied into the cache's own.</summary>
    public void EndChunk(int layer)
    {
        Keys.EndChunk(layer);
        Values.EndChunk(layer);
    }

    /// <summary>Forgets positions from <paramref name="position"/> on.</summary>
    public void Rewind(int position)
    {
        Keys.Rewind(position);
        Values.Rewind(position);
    }

    /// <summary>The largest position at most <paramref name="position"/> that both sides rewind to exactly (<see cref="KvStore.ExactRewindAtMost"/>).</summary>
    public int ExactRewindAtMost(int position)
    {
        // Each side's answer is exact for it; narrowing until both agree ends at a position exact for both (0 at worst).
        int p = position;
        while (true)
        {
            int q = Values.ExactRewindAtMost(Keys.ExactRewindAtMost(p));
            if (q == p) return p;
            p = q;
        }
    }

    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
    }
}
