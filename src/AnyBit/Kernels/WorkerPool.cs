namespace AnyBit.Kernels;

/// <summary>A unit of parallel work: <see cref="Execute"/> is called once per item, on some worker.</summary>
public interface IParallelWork
{
    /// <param name="item">index of the work item, 0..items-1</param>
    /// <param name="worker">index of the executing worker, 0..WorkerCount-1 (for per-worker scratch)</param>
    void Execute(int item, int worker);
}

/// <summary>
/// A persistent pool of worker threads for the kernels. Threads are started once; each <see cref="Run"/> publishes
/// a new generation, hands out items through one atomic counter (so uneven items balance themselves), and returns
/// when all are done. The calling thread works too. Between runs a worker spins for a short while before it
/// blocks: a decode step is ~150 runs of tens of microseconds each, and waking a blocked thread costs about as much
/// as the run itself (with a blocking hand-off, two threads decoded no faster than one). Spinning is pure for the
/// first 50 µs, then yields between spins (see <see cref="PureSpinTicks"/>).
/// Jobs are objects the caller reuses, so a decode step allocates nothing. Runs are serialised: two models used
/// from two threads share the cores in turn rather than oversubscribing. Nested runs are not allowed.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    /// <summary>The process-wide pool with one worker per core.</summary>
    public static WorkerPool Shared { get; } = new(Environment.ProcessorCount);

    /// <summary>How long an idle worker spins before blocking: longer than the gaps inside a decode step (norms,
    /// RoPE, sampling), short enough that an idle model does not hold the cores.</summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 5000; // 200 µs

    /// <summary>How long a waiting thread spins on the CPU alone (pause instructions, no system call) before it
    /// starts yielding between spins: the common gaps of a decode step end within it. Each yield is a system call,
    /// costly in a VM (the hypervisor's interrupt re-enable shows in a decode profile; see docs/performance.md#threads),
    /// and a worker inside one notices a new run late.</summary>
    private static readonly long PureSpinTicks = System.Diagnostics.Stopwatch.Frequency / 20000; // 50 µs

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    private readonly int[] _sleeping;
    private readonly Lock _runLock = new();
    private IParallelWork? _work;
    private int _items, _next, _pendingWorkers;
    private volatile int _generation;
    private volatile bool _stopping;
    private Exception? _error;

    /// <summary>Workers including the calling thread.</summary>
    public int WorkerCount { get; }

    public WorkerPool(int workers)
    {
        WorkerCount = Math.Max(1, workers);
        _threads = new Thread[WorkerCount - 1];
        _wake = new SemaphoreSlim[WorkerCount - 1];
        _sleeping = new int[WorkerCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _wake[i] = new SemaphoreSlim(0);
            int id = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(id)) { IsBackground = true, Name = $"anybit-worker-{id}" };
            _threads[i].Start();
        }
    }

    /// <summary>Executes <paramref name="work"/> for items 0..items-1 across all workers and waits for completion.</summary>
    public void Run(IParallelWork work, int items)
    {
        if (items <= 0) return;
        if (items == 1 || _threads.Length == 0)
        {
            for (int i = 0; i < items; i++) work.Execute(i, 0);
            return;
        }
        lock (_runLock)
        {
            _work = work;
            _items = items;
            _next = 0;
            _error = null;
            // Every worker takes part in every generation (those that find no item left just report back), so a
            // generation cannot end, nor the next begin, before each worker has seen it.
            _pendingWorkers = _threads.Length;
            _generation++; // publishes the fields above (volatile write)
            for (int i = 0; i < _threads.Length; i++)
                if (Interlocked.CompareExchange(ref _sleeping[i], 0, 1) == 1) _wake[i].Release();
            Drain(0);
            WaitForWorkers();
            _work = null;
            if (_error is not null) throw new AggregateException("a kernel worker failed", _error);
        }
    }

    /// <summary>The calling thread's wait for the workers' last items: pure spinning first, then SpinWait's backoff.</summary>
    private void WaitForWorkers()
    {
        long since = System.Diagnostics.Stopwatch.GetTimestamp();
        while (Volatile.Read(ref _pendingWorkers) != 0 && System.Diagnostics.Stopwatch.GetTimestamp() - since < PureSpinTicks) Thread.SpinWait(1);
        var spin = new SpinWait();
        while (Volatile.Read(ref _pendingWorkers) != 0) spin.SpinOnce(sleep1Threshold: -1);
    }

    private void Drain(int worker)
    {
        var work = _work!;
        try
        {
            int item;
            while ((item = Interlocked.Increment(ref _next) - 1) < _items) work.Execute(item, worker);
        }
        catch (Exception e)
        {
            _error ??= e;
            Interlocked.Exchange(ref _next, _items);
        }
    }

    private void WorkerLoop(int id)
    {
        int seen = 0;
        while (true)
        {
            long since = System.Diagnostics.Stopwatch.GetTimestamp();
            while (_generation == seen && !_stopping)
            {
                long waited = System.Diagnostics.Stopwatch.GetTimestamp() - since;
                if (waited < PureSpinTicks)
                {
                    Thread.SpinWait(1);
                    continue;
                }
                if (waited < SpinTicks)
                {
                    // Yield between short spins: when there are more busy threads than cores (tests, two models),
                    // a spinning worker must not take a core from one with work.
                    Thread.SpinWait(32);
                    Thread.Yield();
                    continue;
                }
                // Announce the sleep, then look again: a Run that started in between either sees the flag and
                // releases the semaphore, or its generation is visible here. The announcement must be a full fence
                // (Interlocked, not a volatile write): x86 may let a plain store wait in the store buffer while the
                // read of _generation below goes ahead, and then Run misses the flag, this worker misses the
                // generation, and Run waits forever for it (seen once as a hung CI run).
                Interlocked.Exchange(ref _sleeping[id - 1], 1);
                if (_generation != seen || _stopping)
                {
                    if (Interlocked.CompareExchange(ref _sleeping[id - 1], 0, 1) == 1) break;
                    _wake[id - 1].Wait(); // Run took the flag: consume its release
                    break;
                }
                _wake[id - 1].Wait();
                since = System.Diagnostics.Stopwatch.GetTimestamp();
            }
            if (_stopping) return;
            seen = _generation;
            Drain(id);
            Interlocked.Decrement(ref _pendingWorkers);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        for (int i = 0; i < _wake.Length; i++) _wake[i].Release();
    }
}
