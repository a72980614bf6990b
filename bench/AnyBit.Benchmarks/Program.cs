using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(AnyBit.Benchmarks.MatVecBenchmarks).Assembly).Run(args);
