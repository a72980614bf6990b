using AnyBit.IO;
using AnyBit.Text;

namespace AnyBit.Models;

/// <summary>Options for <see cref="ModelLoader"/>.</summary>
public sealed record LoadOptions
{
    /// <summary>A separate tokenizer file (llama2.c tokenizer.bin, or a tokenizer.json to override the model's).</summary>
    public string? TokenizerPath { get; init; }

    /// <summary>
    /// Run BitNet models with float activations (ternary weights, no int8 activation quantization) instead of the
    /// as-trained W1.58A8 recipe. No effect on other architectures.
    /// </summary>
    public bool FloatReference { get; init; }

    /// <summary>Which kernels run quantized weights: the fast integer ones (default), their scalar reference, or
    /// float32 weights dequantized at load.</summary>
    public Kernels.Quantized.KernelMode Kernels { get; init; } = AnyBit.Kernels.Quantized.KernelMode.Fast;
}

/// <summary>What a model path holds, without loading the weights: for <c>anybit inspect</c> and for loading.</summary>
public sealed class ModelFiles : IDisposable
{
    public required string Path { get; init; }
    /// <summary>"Hugging Face folder", "Hugging Face folder, GPTQ int4 g128 asym (v1)", "GGUF v3", "llama2.c v0", ...</summary>
    public required string Format { get; init; }
    public required ModelConfig Config { get; init; }
    public required IModelWeights Weights { get; init; }
    public ITokenizer? Tokenizer { get; init; }
    /// <summary>GGUF metadata when the model is a GGUF file.</summary>
    public GgufFile? Gguf { get; init; }
    /// <summary>The model's own Jinja chat template, if it has one.</summary>
    public string? ChatTemplateSource { get; init; }

    public void Dispose() => Weights.Dispose();
}

/// <summary>Opens any supported model path: a Hugging Face folder, a GGUF file, or a llama2.c checkpoint.</summary>
public static class ModelLoader
{
    /// <summary>Opens the files and reads config and tokenizer; weights stay memory-mapped.</summary>
    public static ModelFiles Open(string path, LoadOptions? options = null)
    {
        try
        {
            return OpenUnchecked(path, options ?? new LoadOptions());
        }
        catch (Exception e) when (e is not AnyBitException and not OutOfMemoryException and not OperationCanceledException)
        {
            // A malformed file can trip a reader in ways its checks did not foresee; whatever the cause, the user
            // gets the file and the problem, never a stack trace.
            throw new InvalidModelFileException(path, $"malformed model ({e.GetType().Name}: {e.Message})");
        }
    }

    /// <summary>
    /// The file or folder a model path names: a Hub model id's snapshot in the local cache (<see cref="HubCache"/>),
    /// and for a folder without config.json that holds one GGUF (a Hub repository of GGUF files, or its snapshot),
    /// that GGUF. Every reader of model paths starts here.
    /// </summary>
    public static string Resolve(string path)
    {
        path = HubCache.Resolve(path);
        if (!Directory.Exists(path) || File.Exists(System.IO.Path.Combine(path, "config.json"))) return path;
        var ggufs = Directory.GetFiles(path, "*.gguf").Order(StringComparer.Ordinal).ToArray();
        if (ggufs.Length > 1)
            throw new InvalidModelFileException(path, $"no config.json, and {ggufs.Length} GGUF files: pass one of {string.Join(", ", ggufs.Select(System.IO.Path.GetFileName))}");
        return ggufs.Length == 1 ? ggufs[0] : path;
    }

    private static ModelFiles OpenUnchecked(string path, LoadOptions options)
    {
        path = Resolve(path);
        if (Directory.Exists(path)) return OpenHfFolder(path, options);
        if (!File.Exists(path)) throw new InvalidModelFileException(path, "no such file or folder");
        if (MappedFile.LengthOf(path) >= 4 && GgufFile.HasMagic(path)) return OpenGguf(path, options);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new InvalidModelFileException(path, "a lone .safetensors file has no config: pass the model's folder (with config.json)");
        if (Path.GetFileName(path) == "config.json") return OpenHfFolder(Path.GetDirectoryName(Path.GetFullPath(path))!, options);
        return OpenLlama2c(path, options);
    }

    /// <summary>Opens and loads the weights for inference.</summary>
    public static Transformer Load(string path, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        using var files = Open(path, options);
        var mode = files.Config.Architecture.Int8Activations && !options.FloatReference ? ActivationMode.Int8PerToken : ActivationMode.Float;
        TransformerWeights weights;
        try
        {
            weights = WeightLoader.Load(files.Config, files.Weights, path, options.Kernels, int8Activations: mode == ActivationMode.Int8PerToken);
        }
        catch (Exception e) when (e is not AnyBitException and not OutOfMemoryException and not OperationCanceledException)
        {
            throw new InvalidModelFileException(path, $"malformed weights ({e.GetType().Name}: {e.Message})");
        }
        var chatTemplate = ChatTemplateLoader.Create(files.ChatTemplateSource, files.Tokenizer, path);
        return new Transformer(files.Config, weights, files.Tokenizer, mode, path) { ChatTemplate = chatTemplate, Kernels = options.Kernels };
    }

    private static ModelFiles OpenHfFolder(string folder, LoadOptions options)
    {
        string configPath = System.IO.Path.Combine(folder, "config.json");
        if (!File.Exists(configPath))
            throw new InvalidModelFileException(folder, TokenizerFolder.IsTokenizerOnly(folder)
                ? "holds a tokenizer but no model (tokenizer.json, no config.json or weights): anybit tokenize works with it, this command needs a model"
                : "no config.json in the folder (is it a Hugging Face model folder?)");
        var config = HfConfigReader.Read(configPath);
        var raw = SafetensorsCheckpoint.OpenFolder(folder);
        ITensorStore store;
        string? quantized;
        try
        {
            // A quantized checkpoint (GPTQ, AWQ, ...) runs as stored: its modules become AnyBit tensors here.
            store = IO.Checkpoints.QuantizedCheckpoint.Open(raw, configPath, out quantized);
        }
        catch
        {
            raw.Dispose();
            throw;
        }
        try
        {
            // Q/K rows in adjacent-pair order where the GGUF graph rotates adjacent pairs, so the folder runs exactly as
            // its GGUF conversion does.
            Func<string, int>? rotaryHeads = null;
            if (config.Architecture.GgufAdjacentRopePairs)
            {
                var c0 = config;
                rotaryHeads = name => TensorRoles.FromGguf(name) is ({ RotaryHeads: { } heads }, _) ? heads(c0) : 0;
                config = config with { Rope = config.Rope with { Interleaved = true } };
            }
            var arch = config.Architecture;
            var weights = new StoreWeights(store, name => TensorRoles.GgufNameOfHuggingFace(name, arch), rotaryHeads, arch.NormWeightOffset);
            weights.SplitFused(config);
            if (arch.HfInterleavedExperts) weights.SplitInterleavedExperts(config);
            string tokenizerJson = options.TokenizerPath ?? System.IO.Path.Combine(folder, "tokenizer.json");
            ITokenizer? tokenizer = File.Exists(tokenizerJson)
                ? TokenizerJson.Load(tokenizerJson, System.IO.Path.Combine(System.IO.Path.GetDirectoryName(tokenizerJson)!, "tokenizer_config.json"))
                : null;
            config = config with
            {
                TiedEmbeddings = config.TiedEmbeddings || !weights.Contains(TensorRoles.Output.Gguf),
                EosTokenIds = config.EosTokenIds.Length > 0 ? config.EosTokenIds : tokenizer?.EosId is int e ? [e] : [],
            };
            return new ModelFiles
            {
                Path = folder, Format = quantized is null ? "Hugging Face folder" : $"Hugging Face folder, {quantized}", Config = config, Weights = weights, Tokenizer = tokenizer,
                ChatTemplateSource = ChatTemplateLoader.FromFolder(folder),
            };
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    private static ModelFiles OpenGguf(string path, LoadOptions options)
    {
        var gguf = GgufFile.Open(path);
        try
        {
            var config = GgufConfigReader.Read(gguf);
            var tokenizer = options.TokenizerPath is not null ? LoadSeparateTokenizer(options.TokenizerPath, config.VocabSize) : GgufTokenizer.TryLoad(gguf);
            var weights = new StoreWeights(gguf, config.Architecture.CanonicalGgufName);
            weights.SplitFused(config);
            return new ModelFiles
            {
                Path = path, Format = $"GGUF v{gguf.Version}", Config = config, Weights = weights, Tokenizer = tokenizer, Gguf = gguf,
                ChatTemplateSource = ChatTemplateLoader.FromGguf(gguf),
            };
        }
        catch
        {
            gguf.Dispose();
            throw;
        }
    }

    private static ModelFiles OpenLlama2c(string path, LoadOptions options)
    {
        var ckpt = Llama2cCheckpoint.Open(path);
        try
        {
            string? tokPath = options.TokenizerPath;
            if (tokPath is null)
            {
                string sibling = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, "tokenizer.bin");
                if (File.Exists(sibling)) tokPath = sibling;
            }
            var tokenizer = tokPath is null ? null : LoadSeparateTokenizer(tokPath, ckpt.Config.VocabSize);
            return new ModelFiles { Path = path, Format = $"llama2.c v{ckpt.Version}", Config = ckpt.Config, Weights = ckpt, Tokenizer = tokenizer };
        }
        catch
        {
            ckpt.Dispose();
            throw;
        }
    }

    private static ITokenizer LoadSeparateTokenizer(string path, int vocabSize)
    {
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            return TokenizerJson.Load(path, System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, "tokenizer_config.json"));
        return Llama2cTokenizer.Load(path, vocabSize);
    }
}
