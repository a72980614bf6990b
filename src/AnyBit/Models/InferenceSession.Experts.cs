using System.Numerics.Tensors;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Models;

/// <summary>
/// The Mixture-of-Experts feed-forward block (llama.cpp's <c>build_moe_ffn</c>): the router's probabilities, the top
/// k experts per token, and each chosen expert run on the tokens routed to it. Tokens are grouped by expert, so
/// that within a chunk each expert's weights are read once for all its tokens (ggml's <c>mul_mat_id</c>), and a
/// decode step reads only its k experts. Each expert's products run on the fast kernels like any other linear.
/// </summary>
public sealed unsafe partial class InferenceSession
{
    private readonly ExpertScratch? _moe;

    /// <summary>
    /// Buffers of the expert block, for a chunk of at most B tokens. E = experts, k = experts per token,
    /// F = the wider of an expert's and the shared expert's width.
    /// </summary>
    private sealed class ExpertScratch : IDisposable
    {
        public readonly NativeBuffer Logits;          // (B, E) router output
        public readonly NativeBuffer Input;           // (B, D) the rows routed to one expert
        public readonly NativeBuffer Gate, Up;        // (B, F)
        public readonly NativeBuffer Output;          // (B, D) one expert's output rows
        public readonly NativeBuffer Sum;             // (B, D) the block's output
        public readonly int[] Starts;                 // (E + 1) where each expert's rows begin in Rows
        public readonly int[] Rows;                   // (B·k) token of each routed row, grouped by expert
        public readonly float[] Weights;              // (B·k) router weight of each routed row
        public readonly int[] Chosen;                 // (B·k) experts of each token, best first
        public readonly float[] ChosenWeights;        // (B·k)

        public ExpertScratch(ModelConfig c, ExpertConfig e, int batch)
        {
            int width = Math.Max(e.FfnSize, e.SharedFfnSize), d = c.HiddenSize;
            Logits = new NativeBuffer((long)batch * e.Count);
            Input = new NativeBuffer((long)batch * d);
            // (a decode step holds its k experts' gate and up rows at once: DecodeGatesAndUps)
            Gate = new NativeBuffer((long)Math.Max(batch, e.Used) * width);
            Up = new NativeBuffer((long)Math.Max(batch, e.Used) * width);
            Output = new NativeBuffer((long)batch * d);
            Sum = new NativeBuffer((long)batch * d);
            Starts = new int[e.Count + 1];
            Rows = new int[batch * e.Used];
            Weights = new float[batch * e.Used];
            Chosen = new int[batch * e.Used];
            ChosenWeights = new float[batch * e.Used];
        }

        public void Dispose()
        {
            foreach (var b in new[] { Logits, Input, Gate, Up, Output, Sum }) b.Dispose();
        }
    }

    /// <summary>The expert block on the normed rows in _xn; its output replaces them.</summary>
    private void ExpertFeedForward(ExpertWeights w, int layer, int n)
    {
        var e = _c.Experts!;
        var m = _moe!;
        int d = _c.HiddenSize, count = e.Count, k = e.Used, fe = e.FfnSize;
        Linear(w.Router, _xn.Pointer, n, d, count, m.Logits.Pointer);
        if (w.RouterBias is { } routerBias)
            for (int t = 0; t < n; t++) TensorPrimitives.Add(m.Logits.Slice((long)t * count, count), routerBias.Span, m.Logits.Slice((long)t * count, count));
        for (int t = 0; t < n; t++) Route(e, m.Logits.Slice((long)t * count, count), m.Chosen.AsSpan(t * k, k), m.ChosenWeights.AsSpan(t * k, k));
        GroupByExpert(m, n, count, k);

        var sum = m.Sum.Slice(0, n * d);
        sum.Clear();
        if (n == 1 && DecodeGatesAndUps(w, m, count, fe))
        {
            // The chosen experts in expert order, as below (the same sums in the same order); their gate and up rows
            // were made in one run of the pool.
            for (int x = 0, slot = 0; x < count; x++)
            {
                if (m.Starts[x + 1] == m.Starts[x]) continue;
                ExpertDown(w, x, slot, m.Gate.Pointer + (long)slot * fe, fe, e.SwigluLimit, m);
                TensorPrimitives.MultiplyAdd(m.Output.Slice(0, d), m.Weights[m.Starts[x]], sum, sum);
                slot++;
            }
        }
        else for (int x = 0; x < count; x++)
        {
            int first = m.Starts[x], rows = m.Starts[x + 1] - first;
            if (rows == 0) continue;
            // A single token reads its row where it is; a prompt's rows for this expert are gathered.
            float* input = _xn.Pointer;
            if (n > 1)
            {
                input = m.Input.Pointer;
                for (int j = 0; j < rows; j++)
                    _xn.Slice((long)m.Rows[first + j] * d, d).CopyTo(m.Input.Slice((long)j * d, d));
            }
            Observer?.ObserveExpert(layer, LinearInput.FeedForward, x, new ReadOnlySpan<float>(input, rows * d), rows, d);
            ExpertSwiGlu(w, layer, x, input, rows, fe, m);
            // The gated activation down read is still in Gate (calibration of each expert's down projection).
            Observer?.ObserveExpert(layer, LinearInput.FeedForwardDown, x, m.Gate.Slice(0, rows * fe), rows, fe);
            for (int j = 0; j < rows; j++)
            {
                var acc = m.Sum.Slice((long)m.Rows[first + j] * d, d);
                TensorPrimitives.MultiplyAdd(m.Output.Slice((long)j * d, d), m.Weights[first + j], acc, acc);
            }
        }
        if (w.SharedGate is { } sharedGate)
        {
            // Qwen2-MoE's shared expert sees every token; sigmoid(x · w) scales its output.
            SwiGlu(sharedGate, w.SharedUp!, w.SharedDown!, _xn.Pointer, n, e.SharedFfnSize, m);
            for (int t = 0; t < n; t++)
            {
                var xt = _xn.Slice((long)t * d, d);
                float gate = 1f / (1f + MathF.Exp(-TensorPrimitives.Dot(xt, w.SharedGateInput!.Span)));
                var acc = m.Sum.Slice((long)t * d, d);
                TensorPrimitives.MultiplyAdd(m.Output.Slice((long)t * d, d), gate, acc, acc);
            }
        }
        sum.CopyTo(_xn.Slice(0, n * d));
    }

    /// <summary>down(silu(gate·x) ⊙ up·x) for <paramref name="rows"/> rows of <paramref name="x"/>, into the scratch's Output.</summary>
    private void SwiGlu(LinearWeight gate, LinearWeight up, LinearWeight down, float* x, int rows, int width, ExpertScratch m)
    {
        int d = _c.HiddenSize;
        LinearsOfOneInput(x, rows, d, gate, width, m.Gate.Pointer, up, width, m.Up.Pointer);
        for (int j = 0; j < rows; j++) Ops.SiluMultiply(m.Gate.Slice((long)j * width, width), m.Up.Slice((long)j * width, width));
        Linear(down, m.Gate.Pointer, rows, width, d, m.Output.Pointer);
    }

    /// <summary>
    /// A decode step's k chosen experts' gate and up products of its one row, all 2k in one run of the pool
    /// (<see cref="QuantizedMatMul.RunFused"/>: one quantization of the row and one barrier instead of k), into
    /// rows 0..k−1 of the scratch's Gate and Up in expert order. False (nothing done) where the products cannot be
    /// joined: a weight not packed or stored permuted, a shared expert's plain SwiGLU path, or too many experts.
    /// </summary>
    private bool DecodeGatesAndUps(ExpertWeights w, ExpertScratch m, int count, int fe)
    {
        int k = _c.Experts!.Used;
        if (2 * k > QuantizedMatMul.MaxFused) return false;
        var ws = _expertFused ??= new PackedMatrix[QuantizedMatMul.MaxFused];
        Span<nint> ys = stackalloc nint[2 * k];
        int used = 0;
        for (int x = 0; x < count; x++)
        {
            if (m.Starts[x + 1] == m.Starts[x]) continue;
            if (w.Gate[x].Packed is not { } g || w.Up[x].Packed is not { } u || w.Gate[x].InputOrder is not null || w.Up[x].InputOrder is not null)
            {
                Array.Clear(ws);
                return false;
            }
            ws[2 * used] = g; ys[2 * used] = (nint)(m.Gate.Pointer + (long)used * fe);
            ws[2 * used + 1] = u; ys[2 * used + 1] = (nint)(m.Up.Pointer + (long)used * fe);
            used++;
        }
        bool fusable = QuantizedMatMul.CanFuse(ws.AsSpan(0, 2 * used), _model.Kernels);
        if (fusable)
        {
            _quantized.RunFused(_pool, _xn.Pointer, 1, ws.AsSpan(0, 2 * used), ys[..(2 * used)], _model.Kernels,
                perTokenScale: _model.Activations == ActivationMode.Int8PerToken);
            for (int x = 0, slot = 0; x < count; x++)
            {
                if (m.Starts[x + 1] == m.Starts[x]) continue;
                ScaleOutput(w.Gate[x], (float*)ys[2 * slot], fe); ScaleOutput(w.Up[x], (float*)ys[2 * slot + 1], fe);
                slot++;
            }
        }
        Array.Clear(ws);
        return fusable;
    }

    private PackedMatrix[]? _expertFused;

    /// <summary>
    /// The rest of a decode step's expert <paramref name="x"/> after <see cref="DecodeGatesAndUps"/>: its gate and up
    /// rows (row <paramref name="slot"/>) activated, then down, into row 0 of the scratch's Output.
    /// </summary>
    private void ExpertDown(ExpertWeights w, int x, int slot, float* gate, int width, float? limit, ExpertScratch m)
    {
        ActivateExpertRow(w, x, new Span<float>(gate, width), m.Up.Slice((long)slot * width, width), limit);
        ExpertDownRows(w, x, gate, 1, width, m);
    }

    /// <summary>
    /// Expert <paramref name="x"/> of <paramref name="layer"/> on <paramref name="rows"/> rows of <paramref name="input"/>:
    /// gate and up, activated (<see cref="ActivateExpertRow"/>, the rows on the pool), then down, into the scratch's
    /// Output.
    /// </summary>
    private void ExpertSwiGlu(ExpertWeights w, int layer, int x, float* input, int rows, int width, ExpertScratch m)
    {
        LinearsOfOneInput(input, rows, _c.HiddenSize, w.Gate[x], width, m.Gate.Pointer, w.Up[x], width, m.Up.Pointer);
        _activatedExpert = x;
        ForRows(&ActivatedExpertRow, layer, rows);
        ExpertDownRows(w, x, m.Gate.Pointer, rows, width, m);
    }

    // The expert whose gate and up rows ActivatedExpertRow activates (ForRows passes the layer and the row only).
    private int _activatedExpert;

    /// <summary>Row j of the expert being run (<see cref="ExpertSwiGlu"/>): <see cref="ActivateExpertRow"/> on its gate and up rows.</summary>
    private static void ActivatedExpertRow(InferenceSession s, int layer, int j)
    {
        var e = s._c.Experts!;
        int width = e.FfnSize;
        var m = s._moe!;
        ActivateExpertRow(s._model.Weights.Layers[layer].Experts!, s._activatedExpert, m.Gate.Slice((long)j * width, width),
            m.Up.Slice((long)j * width, width), e.SwigluLimit);
    }

    /// <summary>
    /// One row of expert <paramref name="x"/>'s gate and up products, with their biases (gpt-oss), through the SwiGLU
    /// (clamped where the model has a limit, gpt-oss's); the result replaces <paramref name="gate"/>.
    /// </summary>
    private static void ActivateExpertRow(ExpertWeights w, int x, Span<float> gate, Span<float> up, float? limit)
    {
        int width = gate.Length;
        if (w.GateBias is { } gb) TensorPrimitives.Add(gate, gb.Slice((long)x * width, width), gate);
        if (w.UpBias is { } ub) TensorPrimitives.Add(up, ub.Slice((long)x * width, width), up);
        if (limit is float lim) Ops.SwiGluOaiMultiply(gate, up, lim);
        else Ops.SiluMultiply(gate, up);
    }

    /// <summary>Expert <paramref name="x"/>'s down product of <paramref name="rows"/> activated rows, with its bias, into the scratch's Output.</summary>
    private void ExpertDownRows(ExpertWeights w, int x, float* activated, int rows, int width, ExpertScratch m)
    {
        int d = _c.HiddenSize;
        Linear(w.Down[x], activated, rows, width, d, m.Output.Pointer);
        if (w.DownBias is { } db)
            for (int j = 0; j < rows; j++) TensorPrimitives.Add(m.Output.Slice((long)j * d, d), db.Slice((long)x * d, d), m.Output.Slice((long)j * d, d));
    }

    /// <summary>
    /// One token's routing: the gating function of the logits, the k largest (ggml_top_k: best first), their
    /// probabilities as weights, renormalized and scaled where the model says so.
    /// </summary>
    internal static void Route(ExpertConfig e, Span<float> logits, Span<int> chosen, Span<float> weights)
    {
        if (e.Gating == ExpertGating.Softmax) Ops.Softmax(logits);
        else if (e.Gating == ExpertGating.Sigmoid) TensorPrimitives.Sigmoid(logits, logits);
        int k = chosen.Length;
        for (int j = 0; j < k; j++)
        {
            int best = -1;
            for (int x = 0; x < logits.Length; x++)
            {
                if (best >= 0 && !(logits[x] > logits[best])) continue;
                bool taken = false;
                for (int i = 0; i < j; i++) taken |= chosen[i] == x;
                if (!taken) best = x;
            }
            chosen[j] = best;
            weights[j] = logits[best];
        }
        if (e.Gating == ExpertGating.SoftmaxWeight) Ops.Softmax(weights); // top k of the raw logits, softmaxed among themselves
        if (e.NormalizeWeights)
        {
            float total = 0;
            foreach (float v in weights) total += v;
            TensorPrimitives.Divide(weights, total, weights);
        }
        if (e.WeightsScale != 1) TensorPrimitives.Multiply(weights, e.WeightsScale, weights);
    }

    /// <summary>Counting sort of the chunk's (token, expert) pairs by expert: Starts, Rows and Weights.</summary>
    private static void GroupByExpert(ExpertScratch m, int n, int count, int k)
    {
        Array.Clear(m.Starts);
        for (int i = 0; i < n * k; i++) m.Starts[m.Chosen[i] + 1]++;
        for (int x = 0; x < count; x++) m.Starts[x + 1] += m.Starts[x];
        Span<int> next = count <= 512 ? stackalloc int[count] : new int[count];
        m.Starts.AsSpan(0, count).CopyTo(next);
        for (int t = 0; t < n; t++)
            for (int j = 0; j < k; j++)
            {
                int slot = next[m.Chosen[t * k + j]]++;
                m.Rows[slot] = t;
                m.Weights[slot] = m.ChosenWeights[t * k + j];
            }
    }
}
