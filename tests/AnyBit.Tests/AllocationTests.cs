using AnyBit.Models;

namespace AnyBit.Tests;

[Collection("Serial")]
public class AllocationTests
{
    /// <summary>Decoding a token (forward + sampling) allocates nothing on the managed heap, on any thread.</summary>
    [Fact]
    public void Decode_steps_do_not_allocate()
    {
        using var model = ModelLoader.Load(Shared.Data("models", "stories260K", "stories260K.gguf"));
        // A one-worker pool runs every kernel on this thread, so the thread's own allocation counter sees all the
        // work (process-wide counters also see whatever other tests and the runtime do meanwhile).
        using var pool = new AnyBit.Kernels.WorkerPool(1);
        using var session = model.CreateSession(256, pool: pool);
        var sampler = new Sampler(new SamplingOptions { Temperature = 0.8f, TopK = 40, TopP = 0.95f, MinP = 0.05f, RepetitionPenalty = 1.1f, Seed = 7 }, model.Config.VocabSize);
        var history = new int[256];
        history[0] = 1;
        int count = 1;
        int[] one = [1];
        session.Forward(one);
        // Warm up until the JIT's tiering has settled: promotions to tier 1 happen after 30 calls and a 100 ms
        // back-off, and a step taken while they land has been seen to count a few KB (flaky at 20 steps).
        // (60 + 60 + 100 measured steps stay inside the 256-position session.)
        for (int i = 0; i < 60; i++) Step();
        Thread.Sleep(300);
        for (int i = 0; i < 60; i++) Step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) Step();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 4096, $"100 decode steps allocated {allocated} bytes");

        void Step()
        {
            int next = sampler.Sample(session.LastLogits, history.AsSpan(0, count));
            history[count++] = next;
            one[0] = next;
            session.Forward(one);
        }
    }
}
