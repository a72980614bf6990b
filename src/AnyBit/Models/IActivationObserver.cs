namespace AnyBit.Models;

/// <summary>Which activations feed a group of linear layers of one decoder layer.</summary>
public enum LinearInput
{
    /// <summary>The attention norm's output: input of attn_q, attn_k, attn_v.</summary>
    Attention,
    /// <summary>The attention result: input of attn_output.</summary>
    AttentionOutput,
    /// <summary>The feed-forward norm's output: input of ffn_gate, ffn_up.</summary>
    FeedForward,
    /// <summary>The gated activation: input of ffn_down.</summary>
    FeedForwardDown,
    /// <summary>The output norm's output: input of the output head (reported with layer −1, for rows whose logits are computed).</summary>
    Output,
}

/// <summary>
/// Sees the inputs of the linear layers as the forward pass computes them (calibration: importance matrices,
/// GPTQ Hessians, AWQ statistics). <c>rows</c> holds <c>tokens</c> rows of
/// <c>width</c> floats, valid only during the call.
/// </summary>
public interface IActivationObserver
{
    void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width);

    /// <summary>
    /// The rows one expert of a Mixture-of-Experts layer computes on: the tokens routed to <paramref name="expert"/>
    /// (<see cref="LinearInput.FeedForward"/>: the normed rows its gate and up read; <see cref="LinearInput.FeedForwardDown"/>:
    /// its gated activation). The router's input is <see cref="Observe"/>d as the layer's FeedForward input, as before.
    /// Observers that do not calibrate experts ignore it.
    /// </summary>
    void ObserveExpert(int layer, LinearInput input, int expert, ReadOnlySpan<float> rows, int tokens, int width) { }
}
