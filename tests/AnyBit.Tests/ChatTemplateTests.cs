using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary>
/// Chat templates as the models publish them (tests/ChatTemplates, copied from the models' tokenizer_config.json),
/// rendered against the prompt formats their model cards document.
/// </summary>
public class ChatTemplateTests
{
    private static ChatTemplate Load(string name, string? bos = null, string? eos = null) =>
        ChatTemplate.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "ChatTemplates", name + ".jinja")), bos, eos);

    private static readonly ChatTurn[] SystemUser = [new("system", "You are terse."), new("user", "  Hi there \n")];

    [Fact]
    public void Llama3_trims_content_and_adds_bos_once()
    {
        var t = Load("llama3", bos: "<|begin_of_text|>");
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            t.Apply(SystemUser));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>",
            t.Apply([new("user", "x")], addGenerationPrompt: false));
    }

    [Fact]
    public void Mistral_alternation_and_refusal()
    {
        var t = Load("mistral", bos: "<s>", eos: "</s>");
        Assert.Equal("<s>[INST] Hi [/INST]Hello</s>[INST] How? [/INST]",
            t.Apply([new("user", "Hi"), new("assistant", "Hello"), new("user", "How?")]));
        var e = Assert.Throws<AnyBit.Text.Templates.JinjaException>(() => t.Apply([new("assistant", "x")]));
        Assert.Contains("Conversation roles must alternate", e.Message);
    }

    [Fact]
    public void Qwen2_inserts_default_system_prompt()
    {
        var t = Load("qwen2");
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            t.Apply([new("user", "Hi")]));
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
            t.Apply([new("system", "S"), new("user", "Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void Qwen3_thinking_blocks_and_history()
    {
        var t = Load("qwen3");
        Assert.Equal("<|im_start|>user\nHi, robot!<|im_end|>\n<|im_start|>assistant\n", t.Apply([new("user", "Hi, robot!")]));
        Assert.Equal("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n  Hi there \n<|im_end|>\n<|im_start|>assistant\n", t.Apply(SystemUser));
        // The last assistant turn after the last user query keeps its reasoning, re-wrapped in <think> tags.
        Assert.Equal(
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\n42<|im_end|>\n",
            t.Apply([new("user", "Q"), new("assistant", "<think>\nhmm\n</think>\n42")], addGenerationPrompt: false));
        // Earlier assistant turns lose it.
        Assert.Equal(
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n42<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n",
            t.Apply([new("user", "Q"), new("assistant", "<think>\nhmm\n</think>\n42"), new("user", "Again")]));
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n",
            t.Apply([new("user", "Q")], variables: new Dictionary<string, object?> { ["enable_thinking"] = false }));
    }

    [Fact]
    public void Qwen3_renders_tools_as_python_json()
    {
        var t = Load("qwen3");
        var tool = new Dictionary<string, object?>
        {
            ["type"] = "function",
            ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["parameters"] = new Dictionary<string, object?> { ["city"] = "str", ["days"] = 3 } },
        };
        string text = t.Apply([new("user", "Weather?")], variables: new Dictionary<string, object?> { ["tools"] = new List<object?> { tool } });
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"city\": \"str\", \"days\": 3}}}\n</tools>", text);
        Assert.EndsWith("<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n", text);
    }

    [Fact]
    public void ChatML_fallback()
    {
        var t = ChatTemplate.ChatML();
        Assert.True(t.IsFallback);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", t.Apply([new("user", "Hi")]));
    }

    // Jinja semantics with transformers' environment (trim_blocks, lstrip_blocks), checked against Jinja2's documented behaviour.
    [Theory]
    [InlineData("{% for x in [1, 2] %}\n  {{ x }}\n{% endfor %}", "  1\n  2\n")]
    [InlineData("  {% if true %}\nyes\n  {% endif %}\nend", "yes\nend")]
    [InlineData("a  {%- if true -%}  b  {%- endif %}", "ab")]
    [InlineData("{{ 'a' ~ 1 ~ none }}|{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ 7 / 2 }}|{{ -7 % 3 }}", "a1None|7|3|3.5|2")]
    [InlineData("{{ [1,2,3][::-1] }}{{ 'hello'[1:3] }}{{ [1,2,3][-1] }}", "[3, 2, 1]el3")]
    [InlineData("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "6")]
    [InlineData("{% set n = 1 %}{% for i in range(3) %}{% set n = n + i %}{% endfor %}{{ n }}", "1")]
    [InlineData("{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}", "02")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }}{% if not loop.last %},{% endif %}{% endfor %}", "a=1,b=2")]
    [InlineData("{{ x is defined }}{{ x | default('d') }}{{ '' | default('e', true) }}{{ none is none }}", "FalsedeTrue")]
    [InlineData("{{ 'a,b'.split(',') | join('-') }}{{ ' x '.strip() }}{{ 'Hi'.upper() }}{{ [1,2] | length }}", "a-bxHI2")]
    [InlineData("{{ {'k': [1, 'two', none, true]} | tojson }}", "{\"k\": [1, \"two\", null, true]}")]
    [InlineData("{{ {'k': 1} | tojson(indent=2) }}", "{\n  \"k\": 1\n}")]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}", "Hi A! Hi B?")]
    [InlineData("{{ 'yes' if 1 in [1, 2] else 'no' }}{{ 'b' not in 'abc' }}", "yesFalse")]
    [InlineData("{% for m in [{'r': 'a'}, {'r': 'b'}] | selectattr('r', 'equalto', 'b') %}{{ m.r }}{% endfor %}", "b")]
    [InlineData("{# comment #}\nA{% raw %}{{ not }}{% endraw %}", "A{{ not }}")]
    public void Jinja_semantics(string template, string expected) =>
        Assert.Equal(expected, ChatTemplate.Parse(template).Apply([]));

    [Theory]
    [InlineData("{% if x %}", "missing {% endif %}")]
    [InlineData("{{ 1 + }}", "unexpected")]
    [InlineData("{{ x | nosuchfilter }}", "unknown filter 'nosuchfilter'")]
    [InlineData("{% for i in range(100000000) %}{% endfor %}", "range() is too long")]
    [InlineData("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion deeper")]
    [InlineData("{% for i in range(40) %}{{ 'x' * 1000000 }}{% endfor %}", "output exceeds")]
    public void Bad_templates_fail_with_a_clear_message(string template, string message)
    {
        var e = Assert.ThrowsAny<AnyBitException>(() => ChatTemplate.Parse(template).Apply([]));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("chat template:", e.Message);
    }
}
