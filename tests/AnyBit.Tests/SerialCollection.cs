namespace AnyBit.Tests;

/// <summary>
/// Tests that measure process-wide quantities (allocated bytes, heap size) run alone: xunit runs this collection
/// after the parallel ones, with nothing else executing.
/// </summary>
[CollectionDefinition("Serial", DisableParallelization = true)]
public sealed class SerialCollection;
