using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Inference;

/// <summary>Thrown when the scheduler's wait queue is full; the caller should retry later (HTTP 503).</summary>
public sealed class SchedulerBusyException(string message) : AnyBitException(message);

/// <summary>
/// Runs many generations on one model: up to <see cref="SlotCount"/> sequences at once, each with its own KV cache
/// (allocated once, when the scheduler starts, and reused), and a bounded queue of waiting requests beyond that.
/// One scheduler thread owns the model: it admits waiting requests into free slots (prefilling their prompts),
/// then advances every active sequence by one token per step, all of them in one batched forward pass
/// (continuous batching: sequences join and leave the batch between steps). A cancelled request leaves its slot
/// at the next step.
/// </summary>
/// <remarks>
/// Prompt caching (llama.cpp server's <c>cache_prompt</c>, on unless <see cref="GenerationOptions.CachePrompt"/> is
/// false): a slot's cache keeps the tokens of its last sequence after it ends. A new request goes to the free slot
/// holding the longest common prefix with its prompt (when that is a fair part of it; else to the least recently
/// used slot, so that the other caches live on), which is rewound to that prefix; only the rest of the prompt is
/// processed, and <see cref="GenerationUsage.CachedTokens"/> reports the reused part.
/// Reuse is limited to rewinds that are exact (<see cref="InferenceSession.ExactRewindAtMost"/>): with the float32
/// cache, or a quantized one without a window, any prefix; with a float32 window, a rewind further back than the rows
/// still held in float32 would read those window positions decoded where a fresh run reads them in float32, so the
/// answer would depend on which slot served the request, and such a slot is reset instead. Reproducible outputs
/// (temperature 0 gives the same text whichever slot runs it) were chosen over the prefill saved there.
/// </remarks>
public sealed class GenerationScheduler : IDisposable
{
    private readonly Transformer _model;
    private readonly InferenceSession[] _sessions;
    private readonly Job?[] _slots;
    private readonly ConcurrentQueue<Job> _queue = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Thread _thread;
    private readonly int[] _defaultStopIds;
    private readonly List<int>?[] _cachedTokens; // per slot: the ids whose keys and values its cache holds, from position 0
    private readonly int[] _cachedLength;        // per slot: how many of them (the session's position when its last job ended)
    private readonly long[] _lastUsed;           // per slot: when a job last took it, for least-recently-used choice
    private long _admissions;
    private volatile bool _stopping;
    private int _queued, _active;
    private long _completed, _cancelled, _failed, _cachedPromptTokens;

    /// <param name="model">the loaded model (not owned: dispose it after the scheduler)</param>
    /// <param name="slots">sequences generated concurrently, each with a KV cache of <paramref name="contextSize"/></param>
    /// <param name="contextSize">positions per sequence (prompt plus output)</param>
    /// <param name="queueLimit">requests that may wait for a slot; more are refused with <see cref="SchedulerBusyException"/></param>
    /// <param name="cache">how each slot's KV cache stores keys and values (default float32)</param>
    public GenerationScheduler(Transformer model, int slots, int contextSize, int queueLimit, KvCacheOptions? cache = null)
    {
        if (slots < 1) throw new AnyBitException($"parallel sequences {slots} must be ≥ 1");
        if (contextSize < 2) throw new AnyBitException($"context size {contextSize} must be ≥ 2");
        if (contextSize > model.Config.MaxPositions) throw new AnyBitException($"context size {contextSize} exceeds the model's {model.Config.MaxPositions} positions");
        if (queueLimit < 0) throw new AnyBitException($"queue limit {queueLimit} must be ≥ 0");
        _model = model;
        SlotCount = slots;
        ContextSize = contextSize;
        QueueLimit = queueLimit;
        _sessions = new InferenceSession[slots];
        try
        {
            for (int i = 0; i < slots; i++) _sessions[i] = model.CreateSession(contextSize, cache: cache);
        }
        catch
        {
            foreach (var s in _sessions) s?.Dispose();
            throw;
        }
        _slots = new Job?[slots];
        _cachedTokens = new List<int>?[slots];
        _cachedLength = new int[slots];
        _lastUsed = new long[slots];
        _defaultStopIds = model.Config.EosTokenIds;
        _thread = new Thread(Loop) { IsBackground = true, Name = "AnyBit scheduler" };
        _thread.Start();
    }

    /// <summary>Sequences that can be generated at once.</summary>
    public int SlotCount { get; }

    /// <summary>Positions per sequence.</summary>
    public int ContextSize { get; }

    /// <summary>Requests that may wait for a free slot.</summary>
    public int QueueLimit { get; }

    /// <summary>Sequences being generated now.</summary>
    public int ActiveSequences => Volatile.Read(ref _active);

    /// <summary>Requests waiting for a slot.</summary>
    public int QueuedRequests => Volatile.Read(ref _queued);

    /// <summary>Requests that ran to their end.</summary>
    public long CompletedRequests => Interlocked.Read(ref _completed);

    /// <summary>Requests cancelled by their caller (a closed stream, a disconnected client).</summary>
    public long CancelledRequests => Interlocked.Read(ref _cancelled);

    /// <summary>Requests that failed with an error.</summary>
    public long FailedRequests => Interlocked.Read(ref _failed);

    /// <summary>Prompt tokens taken from a slot's cache instead of processed, over all requests (prompt caching).</summary>
    public long CachedPromptTokens => Interlocked.Read(ref _cachedPromptTokens);

    /// <summary>
    /// Queues a generation and returns its stream of chunks. Throws at once, before queueing, when the prompt
    /// does not fit the context or the options are out of range (<see cref="AnyBitException"/>), or when the queue
    /// is full (<see cref="SchedulerBusyException"/>). Cancelling <paramref name="cancellation"/> or disposing
    /// the stream frees the request's slot.
    /// </summary>
    public GenerationStream Submit(int[] prompt, GenerationOptions options, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        options.Validate();
        if (prompt.Length == 0) throw new AnyBitException("the prompt is empty: give at least one token");
        if (prompt.Length >= ContextSize)
            throw new AnyBitException($"the prompt has {prompt.Length} tokens; the context holds {ContextSize} (shorten the prompt)");
        foreach (int t in prompt)
            if ((uint)t >= (uint)_model.Config.VocabSize) throw new AnyBitException($"token id {t} is outside the vocabulary (0..{_model.Config.VocabSize - 1})");

        var job = new Job(this, prompt, options);
        if (Interlocked.Increment(ref _queued) > QueueLimit + Math.Max(0, SlotCount - ActiveSequences))
        {
            Interlocked.Decrement(ref _queued);
            throw new SchedulerBusyException($"the server is busy: {SlotCount} sequences running and {QueueLimit} waiting");
        }
        _queue.Enqueue(job);
        if (cancellation.CanBeCanceled) job.Registration = cancellation.Register(job.Cancel);
        _signal.Release();
        return new GenerationStream(job, cancellation);
    }

    private void Wake() => _signal.Release();

    private void Loop()
    {
        while (!_stopping)
        {
            try
            {
                Admit();
                if (!DecodeStep() && _queue.IsEmpty) _signal.Wait();
            }
            catch (Exception e) when (!_stopping)
            {
                // A bug in one step must not take the server down: fail the sequences that were running.
                for (int i = 0; i < _slots.Length; i++)
                    if (_slots[i] is Job job) Fail(i, job, e);
            }
        }
    }

    /// <summary>Moves waiting requests into free slots and prefills their prompts (the part no slot's cache holds).</summary>
    private void Admit()
    {
        while (Array.IndexOf(_slots, null) >= 0)
        {
            Job? job = null;
            while (_queue.TryDequeue(out var candidate))
            {
                if (!candidate.TryLeaveQueue()) continue; // cancelled while waiting: already completed and counted
                job = candidate;
                break;
            }
            if (job is null) return;
            if (job.Options.MaxTokens == 0)
            {
                job.Emit(new GenerationChunk("", null) { FinishReason = FinishReason.Length, Usage = new(job.Prompt.Length, 0), Timings = new(0, job.Prompt.Length, 0, 0) });
                job.Complete(null, cancelled: false);
                Interlocked.Increment(ref _completed);
                continue;
            }
            int slot = ChooseSlot(job.Prompt, job.Options.CachePrompt, out int reuse);
            _slots[slot] = job;
            _lastUsed[slot] = ++_admissions;
            _cachedLength[slot] = 0; // the cache changes from here on; it is recorded again when the job ends
            Interlocked.Increment(ref _active);
            Interlocked.Add(ref _cachedPromptTokens, reuse);
            try
            {
                job.Start(_sessions[slot], _defaultStopIds, reuse);
                if (Advance(job)) Release(slot, cancelled: false);
            }
            catch (Exception e)
            {
                Fail(slot, job, e);
            }
        }
    }

    /// <summary>
    /// A slot's cache is chosen for what it holds only when it covers at least this part of the prompt (llama.cpp
    /// server's <c>--slot-prompt-similarity</c>, default 0.1): otherwise a request that shares a BOS or a short system
    /// line would overwrite the one cache that holds a long conversation, for a reuse of a few tokens.
    /// </summary>
    private const double MinSharedPart = 0.1;

    /// <summary>
    /// The free slot for <paramref name="prompt"/>: with <paramref name="cachePrompt"/>, the one whose cache holds the
    /// longest common prefix with it, as far as the slot rewinds there exactly, if that is at least
    /// <see cref="MinSharedPart"/> of the prompt; else the least recently used one (keeping the newer caches for
    /// their follow-ups). <paramref name="reuse"/> is the chosen slot's reusable prefix, at most all but the
    /// prompt's last token: its logits choose the first new token.
    /// </summary>
    private int ChooseSlot(int[] prompt, bool cachePrompt, out int reuse)
    {
        int longest = -1, oldest = -1, longestReuse = 0, oldestReuse = 0;
        for (int s = 0; s < _slots.Length; s++)
        {
            if (_slots[s] is not null) continue;
            int common = 0;
            if (cachePrompt && _cachedTokens[s] is List<int> cached)
            {
                int n = Math.Min(_cachedLength[s], prompt.Length - 1);
                while (common < n && cached[common] == prompt[common]) common++;
                common = _sessions[s].ExactRewindAtMost(common);
            }
            if (longest < 0 || common > longestReuse || (common == longestReuse && _lastUsed[s] < _lastUsed[longest]))
            {
                longest = s;
                longestReuse = common;
            }
            if (oldest < 0 || _lastUsed[s] < _lastUsed[oldest])
            {
                oldest = s;
                oldestReuse = common;
            }
        }
        if (longestReuse >= MinSharedPart * prompt.Length)
        {
            reuse = longestReuse;
            return longest;
        }
        reuse = oldestReuse;
        return oldest;
    }

    private readonly List<InferenceSession> _batchSessions = new();
    private readonly List<int> _batchSlots = new();
    private int[] _batchTokens = [];

    /// <summary>
    /// One token for every active sequence, decoded as one batch: the weights stream through the cores once for
    /// all sequences instead of once per sequence (each sequence attends to its own cache). Cancelled sequences leave
    /// their slots first. Returns false when no sequence was active.
    /// </summary>
    private bool DecodeStep()
    {
        _batchSessions.Clear();
        _batchSlots.Clear();
        for (int i = 0; i < _slots.Length; i++)
        {
            var job = _slots[i];
            if (job is null) continue;
            if (job.IsCancelled) { Release(i, cancelled: true); continue; }
            _batchSlots.Add(i);
            _batchSessions.Add(job.Session!);
        }
        if (_batchSlots.Count == 0) return false;
        if (_batchTokens.Length < _batchSlots.Count) _batchTokens = new int[_slots.Length];
        for (int b = 0; b < _batchSlots.Count; b++) _batchTokens[b] = _slots[_batchSlots[b]]!.NextToken[0];
        try
        {
            InferenceSession.ForwardBatch(_batchSessions, _batchTokens.AsSpan(0, _batchSlots.Count));
        }
        catch (Exception e)
        {
            foreach (int i in _batchSlots) Fail(i, _slots[i]!, e);
            return true;
        }
        foreach (int i in _batchSlots)
        {
            var job = _slots[i]!;
            try
            {
                if (Advance(job)) Release(i, cancelled: false);
            }
            catch (Exception e)
            {
                Fail(i, job, e);
            }
        }
        return true;
    }

    /// <summary>Samples the next token of <paramref name="job"/> and emits it; true when the job has finished.</summary>
    private bool Advance(Job job)
    {
        var session = job.Session!;
        int next = job.Sampler!.Sample(session.LastLogits, CollectionsMarshal.AsSpan(job.History));
        job.History.Add(next);
        job.Generated++;
        bool endToken = Array.IndexOf(job.StopIds!, next) >= 0;
        string text = endToken ? "" : job.Matcher.Push(job.Decoder?.Append(next) ?? "");
        FinishReason? finish = endToken || job.Matcher.Stopped ? FinishReason.Stop
            : job.Generated >= job.Options.MaxTokens || session.Position >= ContextSize ? FinishReason.Length
            : null;
        if (finish is not null && !job.Matcher.Stopped)
        {
            text += job.Matcher.Push(job.Decoder?.Flush() ?? "");
            text += job.Matcher.Flush();
            if (job.Matcher.Stopped) finish = FinishReason.Stop;
        }
        if (finish is null)
        {
            job.NextToken[0] = next;
            job.Emit(new GenerationChunk(text, next));
            return false;
        }
        job.Emit(new GenerationChunk(text, next)
        {
            FinishReason = finish,
            Usage = new GenerationUsage(job.Prompt.Length, job.Generated) { CachedTokens = job.CachedTokens },
            Timings = job.Timings(),
        });
        return true;
    }

    private void Release(int slot, bool cancelled)
    {
        var job = _slots[slot]!;
        _slots[slot] = null;
        // The cache holds every token the job fed through the model (all of its history but the last sampled one).
        _cachedTokens[slot] = job.History;
        _cachedLength[slot] = job.Session!.Position;
        Interlocked.Decrement(ref _active);
        job.Complete(null, cancelled);
        if (cancelled) Interlocked.Increment(ref _cancelled);
        else Interlocked.Increment(ref _completed);
    }

    private void Fail(int slot, Job job, Exception e)
    {
        if (_slots[slot] == job)
        {
            _slots[slot] = null;
            _cachedLength[slot] = 0; // a step failed part-way: the cache's contents are unknown
            Interlocked.Decrement(ref _active);
        }
        job.Complete(e, cancelled: false);
        Interlocked.Increment(ref _failed);
    }

    /// <summary>Stops the scheduler thread; waiting and running requests end with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _signal.Release();
        _thread.Join();
        var gone = new ObjectDisposedException(nameof(GenerationScheduler));
        foreach (var job in _slots) job?.Complete(gone, cancelled: false);
        while (_queue.TryDequeue(out var job)) job.Complete(gone, cancelled: false);
        foreach (var s in _sessions) s.Dispose();
        _signal.Dispose();
    }

    /// <summary>One request: its input, its output channel and, while it runs, its slot's session and sampler.</summary>
    internal sealed class Job(GenerationScheduler owner, int[] prompt, GenerationOptions options)
    {
        private readonly Channel<GenerationChunk> _output = Channel.CreateUnbounded<GenerationChunk>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        private volatile bool _cancelled;
        private readonly Stopwatch _clock = new();
        private double _promptSeconds;

        public int[] Prompt { get; } = prompt;
        public GenerationOptions Options { get; } = options;
        public CancellationTokenRegistration Registration { get; set; }
        public bool IsCancelled => _cancelled;
        public ChannelReader<GenerationChunk> Output => _output.Reader;

        public InferenceSession? Session { get; private set; }
        public Sampler? Sampler { get; private set; }
        public List<int> History { get; } = new(prompt.Length + 16);
        public StreamingDecoder? Decoder { get; private set; }
        public StopSequenceMatcher Matcher { get; } = new(options.StopSequences);
        public int[]? StopIds { get; private set; }
        public int[] NextToken { get; } = new int[1];
        public int Generated { get; set; }
        /// <summary>Prompt tokens whose keys and values were already in the slot's cache.</summary>
        public int CachedTokens { get; private set; }

        private int _queueState; // 0 waiting in the queue, 1 taken by the scheduler, 2 cancelled while waiting

        /// <summary>Called by the scheduler when it dequeues the job; false when the job was cancelled while waiting.</summary>
        public bool TryLeaveQueue()
        {
            if (Interlocked.CompareExchange(ref _queueState, 1, 0) != 0) return false;
            Interlocked.Decrement(ref owner._queued);
            return true;
        }

        public void Cancel()
        {
            if (_cancelled) return;
            _cancelled = true;
            // A job still waiting for a slot is finished here, so its caller and its queue place are freed now
            // rather than when a slot opens.
            if (Interlocked.CompareExchange(ref _queueState, 2, 0) == 0)
            {
                Interlocked.Decrement(ref owner._queued);
                Interlocked.Increment(ref owner._cancelled);
                Complete(null, cancelled: true);
            }
            owner.Wake();
        }

        /// <summary>Takes a slot: rewinds its cache to the <paramref name="reuse"/> prompt tokens it holds and prefills the rest.</summary>
        public void Start(InferenceSession session, int[] defaultStopIds, int reuse)
        {
            Session = session;
            Sampler = new Sampler(Options.Sampling, session.Model.Config.VocabSize);
            StopIds = Options.StopAtEndOfSequence ? [.. defaultStopIds, .. Options.StopTokenIds] : [.. Options.StopTokenIds];
            var tokenizer = session.Model.Tokenizer;
            if (tokenizer is not null)
            {
                // The prompt goes through the decoder first so that the first new token decodes in context.
                Decoder = new StreamingDecoder(tokenizer, skipSpecial: true);
                foreach (int id in Prompt) Decoder.Append(id);
            }
            History.AddRange(Prompt);
            _clock.Start();
            CachedTokens = reuse;
            session.Rewind(reuse);
            session.Forward(Prompt.AsSpan(reuse));
            _promptSeconds = _clock.Elapsed.TotalSeconds;
            _clock.Restart();
        }

        /// <summary>The prompt's speed counts the tokens processed, not those taken from the cache.</summary>
        public GenerationTimings Timings() => new(_promptSeconds, Prompt.Length - CachedTokens, _clock.Elapsed.TotalSeconds, Generated);

        public void Emit(GenerationChunk chunk) => _output.Writer.TryWrite(chunk);

        public void Complete(Exception? error, bool cancelled)
        {
            Registration.Dispose();
            _output.Writer.TryComplete(cancelled ? new OperationCanceledException("the generation was cancelled") : error);
        }
    }
}

/// <summary>
/// The chunks of one queued generation, in order. Enumerate it once; leaving the enumeration early or disposing
/// the stream cancels the generation and frees its slot.
/// </summary>
public sealed class GenerationStream : IAsyncEnumerable<GenerationChunk>, IDisposable
{
    private readonly GenerationScheduler.Job _job;
    private readonly CancellationToken _submitted;

    internal GenerationStream(GenerationScheduler.Job job, CancellationToken submitted)
    {
        _job = job;
        _submitted = submitted;
    }

    /// <summary>Tokens in the prompt.</summary>
    public int PromptTokens => _job.Prompt.Length;

    /// <inheritdoc />
    public async IAsyncEnumerator<GenerationChunk> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(_submitted, cancellationToken);
        try
        {
            await foreach (var chunk in _job.Output.ReadAllAsync(linked.Token).ConfigureAwait(false))
            {
                // Chunks may already be buffered when the caller cancels: stop at once rather than drain them.
                linked.Token.ThrowIfCancellationRequested();
                yield return chunk;
            }
        }
        finally
        {
            _job.Cancel();
        }
    }

    /// <summary>Collects the whole output.</summary>
    public async Task<GenerationResult> ToResultAsync(CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        var ids = new List<int>();
        GenerationChunk? last = null;
        await foreach (var chunk in this.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            text.Append(chunk.Text);
            if (chunk.TokenId is int id) ids.Add(id);
            last = chunk;
        }
        if (last?.FinishReason is not FinishReason reason) throw new OperationCanceledException("the generation ended without a result");
        return new GenerationResult(text.ToString(), ids, reason, last.Usage!, last.Timings!);
    }

    /// <summary>Cancels the generation if it is still running.</summary>
    public void Dispose() => _job.Cancel();
}
