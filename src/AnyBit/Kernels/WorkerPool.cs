namespace AnyBit.Kernels;

/// <summary>A unit of parallel work: <see cref="Execute"/> is called once per item, on some worker.</summary>
public interface IParallelWork
{
    /// <param name="item">index of the work item, 0..items-1</param>
    /// <param name="worker">index of the executing worker, 0..WorkerCount-1 (for per-worker scratch)</param>
    void Execute(int item, int worker);
}

/// <summary>
/// A persistent pool of worker threads for the kernels. Threads are started once; each <see cref="Run"/> wakes them,
/// hands out items through one atomic counter (so uneven items balance themselves), and returns when all are done.
/// The calling thread works too. Jobs are objects the caller reuses, so a decode step allocates nothing.
/// Runs are serialised: two models used from two threads share the cores in turn rather than oversubscribing.
/// Nested runs (a job calling Run) are not allowed.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    /// <summary>The process-wide pool with one worker per core.</summary>
    public static WorkerPool Shared { get; } = new(Environment.ProcessorCount);

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _go;
    private readonly ManualResetEventSlim _done = new(false);
    private readonly Lock _runLock = new();
    private IParallelWork? _work;
    private int _items, _next, _pendingWorkers;
    private volatile bool _stopping;
    private Exception? _error;

    /// <summary>Workers including the calling thread.</summary>
    public int WorkerCount { get; }

    public WorkerPool(int workers)
    {
        WorkerCount = Math.Max(1, workers);
        _threads = new Thread[WorkerCount - 1];
        _go = new SemaphoreSlim[WorkerCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _go[i] = new SemaphoreSlim(0);
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
            int helpers = Math.Min(_threads.Length, items - 1);
            _pendingWorkers = helpers;
            _done.Reset();
            for (int i = 0; i < helpers; i++) _go[i].Release();
            Drain(0);
            if (helpers > 0) _done.Wait();
            _work = null;
            if (_error is not null) throw new AggregateException("a kernel worker failed", _error);
        }
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
        while (true)
        {
            _go[id - 1].Wait();
            if (_stopping) return;
            Drain(id);
            if (Interlocked.Decrement(ref _pendingWorkers) == 0) _done.Set();
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var g in _go) g.Release();
    }
}
