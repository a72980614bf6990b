using AnyBit.Text.Templates;

namespace AnyBit.Text;

/// <summary>One message of a conversation: a role ("system", "user", "assistant", "tool") and its text.</summary>
public sealed record ChatTurn(string Role, string Content);

/// <summary>
/// A model's chat template: the Jinja program (from tokenizer_config.json, chat_template.jinja or GGUF
/// <c>tokenizer.chat_template</c>) that turns a conversation into the prompt text the model was tuned on.
/// Rendering follows transformers' apply_chat_template: variables <c>messages</c>, <c>add_generation_prompt</c>,
/// <c>bos_token</c>, <c>eos_token</c>, trim_blocks and lstrip_blocks on. Models without one get ChatML.
/// </summary>
/// <remarks>
/// Jinja is interpreted here by a small hand-written engine (Text/Templates): no maintained .NET package
/// implements Jinja2 (Fluid and Scriban speak Liquid, whose syntax and scoping differ).
/// </remarks>
public sealed class ChatTemplate
{
    private readonly List<JinjaNode> _program;

    /// <summary>ChatML (<c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c>), the fallback for models without a template.</summary>
    public const string ChatMLSource =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    private ChatTemplate(string source, string? bosToken, string? eosToken, bool isFallback)
    {
        Source = source;
        BosToken = bosToken;
        EosToken = eosToken;
        IsFallback = isFallback;
        _program = JinjaParser.Parse(source);
    }

    /// <summary>Parses a template; throws <see cref="JinjaException"/> naming the problem when it is not valid Jinja.</summary>
    public static ChatTemplate Parse(string source, string? bosToken = null, string? eosToken = null) => new(source, bosToken, eosToken, false);

    /// <summary>The ChatML fallback.</summary>
    public static ChatTemplate ChatML(string? bosToken = null, string? eosToken = null) => new(ChatMLSource, bosToken, eosToken, true);

    /// <summary>The Jinja source.</summary>
    public string Source { get; }

    /// <summary>Value of <c>bos_token</c> inside the template.</summary>
    public string? BosToken { get; }

    /// <summary>Value of <c>eos_token</c> inside the template.</summary>
    public string? EosToken { get; }

    /// <summary>True when the model had no template and ChatML is used instead.</summary>
    public bool IsFallback { get; }

    /// <summary>
    /// Renders <paramref name="messages"/> to prompt text. With <paramref name="addGenerationPrompt"/> the text ends
    /// where the assistant's reply begins. <paramref name="variables"/> adds or overrides template variables
    /// (for example <c>tools</c> or <c>enable_thinking</c>).
    /// </summary>
    public string Apply(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt = true, IReadOnlyDictionary<string, object?>? variables = null)
    {
        var globals = new Dictionary<string, object?>
        {
            ["messages"] = messages.Select(m => new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = BosToken ?? "",
            ["eos_token"] = EosToken ?? "",
        };
        if (variables is not null) foreach (var (k, v) in variables) globals[k] = v;
        return JinjaRenderer.Render(_program, globals);
    }
}
