// Loads a model, streams a completion, then holds a two-turn chat through Microsoft.Extensions.AI's IChatClient.
//   dotnet run --project samples/AnyBit.Sample -- ../shared/data/models/gutenberg-llama
using AnyBit;
using AnyBit.AI;
using AnyBit.Inference;
using AnyBit.Models;
using Microsoft.Extensions.AI;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: AnyBit.Sample MODEL_PATH   (a Hugging Face folder, a .gguf file or a llama2.c .bin)");
    return 2;
}

try
{
    using var model = LanguageModel.Load(args[0], new LanguageModelOptions { ContextSize = 512 });
    Console.WriteLine($"{model.Name}: {model.Config.Architecture}, {model.Config.NumLayers} layers, vocabulary {model.Config.VocabSize}");

    // 1. Streamed completion with sampling options and a stop sequence.
    var options = new GenerationOptions
    {
        MaxTokens = 48,
        Sampling = new SamplingOptions { Temperature = 0.7f, TopP = 0.9f, Seed = 42 },
        StopSequences = ["\n\n"],
    };
    Console.Write("It was a dark and stormy night");
    await foreach (var chunk in model.GenerateAsync("It was a dark and stormy night", options))
    {
        Console.Write(chunk.Text);
        if (chunk.Usage is { } usage) Console.WriteLine($"\n[{usage.CompletionTokens} tokens, finished: {chunk.FinishReason}]");
    }

    // 2. Chat through IChatClient, the abstraction the .NET AI ecosystem speaks.
    IChatClient chat = new AnyBitChatClient(model);
    List<ChatMessage> history = [new(ChatRole.System, "You are a storyteller."), new(ChatRole.User, "Tell me about the sea.")];
    var reply = await chat.GetResponseAsync(history, new ChatOptions { MaxOutputTokens = 40, Temperature = 0 });
    Console.WriteLine($"assistant: {reply.Text}");
    history.AddRange(reply.Messages);
    history.Add(new(ChatRole.User, "And then?"));
    Console.Write("assistant: ");
    await foreach (var update in chat.GetStreamingResponseAsync(history, new ChatOptions { MaxOutputTokens = 40, Temperature = 0 }))
        Console.Write(update.Text);
    Console.WriteLine();
    return 0;
}
catch (AnyBitException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
