using System.Text;
using static AnyBit.Text.Templates.JinjaValues;

namespace AnyBit.Text.Templates;

/// <summary>
/// Evaluates a parsed template. Scopes follow Jinja: a for loop body gets its own scope per iteration (so a plain
/// <c>set</c> inside it does not leak out, which is why templates use <c>namespace()</c>), if blocks do not.
/// Output is bounded so that a hostile template cannot exhaust memory.
/// </summary>
internal sealed class JinjaRenderer
{
    private enum Flow { Normal, Break, Continue }

    private sealed class Scope(Scope? parent)
    {
        public readonly Dictionary<string, object?> Vars = new();
        public Scope? Parent => parent;

        public object? Lookup(string name)
        {
            for (var s = this; s is not null; s = s.Parent)
                if (s.Vars.TryGetValue(name, out var v)) return v;
            return JinjaUndefined.Instance;
        }
    }

    private const int MaxOutputChars = 16 << 20, MaxLoopIterations = 1_000_000, MaxDepth = 200;
    private readonly StringBuilder _out = new();
    private int _iterations, _depth;

    public static string Render(List<JinjaNode> template, IReadOnlyDictionary<string, object?> globals)
    {
        var renderer = new JinjaRenderer();
        var scope = new Scope(null);
        foreach (var (k, v) in JinjaBuiltins.Globals()) scope.Vars[k] = v;
        foreach (var (k, v) in globals) scope.Vars[k] = FromClr(v);
        renderer.RenderNodes(template, scope, renderer._out);
        return renderer._out.ToString();
    }

    private Flow RenderNodes(List<JinjaNode> nodes, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            var flow = RenderNode(node, scope, output);
            if (flow != Flow.Normal) return flow;
            if (output.Length > MaxOutputChars) throw new JinjaException($"output exceeds {MaxOutputChars} characters");
        }
        return Flow.Normal;
    }

    private Flow RenderNode(JinjaNode node, Scope scope, StringBuilder output)
    {
        switch (node)
        {
            case TextNode t:
                output.Append(t.Text);
                return Flow.Normal;
            case OutputNode o:
                output.Append(ToText(Eval(o.Value, scope)));
                return Flow.Normal;
            case IfNode i:
                foreach (var (condition, body) in i.Branches)
                    if (Truthy(Eval(condition, scope))) return RenderNodes(body, scope, output);
                return i.Else is null ? Flow.Normal : RenderNodes(i.Else, scope, output);
            case ForNode f:
                return RenderFor(f, scope, output);
            case SetNode s:
                RenderSet(s, scope);
                return Flow.Normal;
            case MacroNode m:
                scope.Vars[m.Name] = MakeMacro(m, scope);
                return Flow.Normal;
            case BreakNode:
                return Flow.Break;
            case ContinueNode:
                return Flow.Continue;
            default:
                throw new JinjaException($"unknown node {node.GetType().Name}");
        }
    }

    private Flow RenderFor(ForNode f, Scope scope, StringBuilder output)
    {
        var items = new List<object?>();
        foreach (var item in Iterate(Eval(f.Iterable, scope), f.Iterable.Position))
        {
            if (f.Filter is not null)
            {
                var probe = new Scope(scope);
                Bind(probe, f.Targets, item, f.Iterable.Position);
                if (!Truthy(Eval(f.Filter, probe))) continue;
            }
            items.Add(item);
        }
        if (items.Count == 0) return f.Else is null ? Flow.Normal : RenderNodes(f.Else, scope, output);
        for (int i = 0; i < items.Count; i++)
        {
            if (++_iterations > MaxLoopIterations) throw new JinjaException($"more than {MaxLoopIterations} loop iterations");
            var inner = new Scope(scope);
            Bind(inner, f.Targets, items[i], f.Iterable.Position);
            inner.Vars["loop"] = new Dictionary<string, object?>
            {
                ["index"] = (long)i + 1, ["index0"] = (long)i,
                ["revindex"] = (long)(items.Count - i), ["revindex0"] = (long)(items.Count - i - 1),
                ["first"] = i == 0, ["last"] = i == items.Count - 1, ["length"] = (long)items.Count,
                ["previtem"] = i > 0 ? items[i - 1] : JinjaUndefined.Instance,
                ["nextitem"] = i + 1 < items.Count ? items[i + 1] : JinjaUndefined.Instance,
            };
            if (RenderNodes(f.Body, inner, output) == Flow.Break) break;
        }
        return Flow.Normal;
    }

    private static void Bind(Scope scope, List<string> targets, object? value, int position)
    {
        if (targets.Count == 1) { scope.Vars[targets[0]] = value; return; }
        var parts = value as List<object?> ?? throw new JinjaException($"cannot unpack {TypeName(value)} into {targets.Count} names", position);
        if (parts.Count != targets.Count) throw new JinjaException($"cannot unpack {parts.Count} values into {targets.Count} names", position);
        for (int i = 0; i < targets.Count; i++) scope.Vars[targets[i]] = parts[i];
    }

    private void RenderSet(SetNode s, Scope scope)
    {
        object? value;
        if (s.Value is not null) value = Eval(s.Value, scope);
        else
        {
            var sb = new StringBuilder();
            RenderNodes(s.Body!, scope, sb);
            value = sb.ToString();
        }
        if (s.Attribute is not null)
        {
            if (scope.Lookup(s.Targets[0]) is not JinjaNamespace ns)
                throw new JinjaException($"'{s.Targets[0]}' is not a namespace: only namespace() objects take attribute assignment");
            ns[s.Attribute] = value;
            return;
        }
        Bind(scope, s.Targets, value, s.Value?.Position ?? 0);
    }

    private JinjaCallable MakeMacro(MacroNode m, Scope definedIn) => (args, kwargs) =>
    {
        var scope = new Scope(definedIn);
        for (int i = 0; i < m.Parameters.Count; i++)
        {
            var (name, fallback) = m.Parameters[i];
            scope.Vars[name] = i < args.Count ? args[i]
                : kwargs.TryGetValue(name, out var kw) ? kw
                : fallback is not null ? Eval(fallback, definedIn) : JinjaUndefined.Instance;
        }
        var sb = new StringBuilder();
        Enter();
        try { RenderNodes(m.Body, scope, sb); }
        finally { _depth--; }
        return sb.ToString();
    };

    private void Enter()
    {
        if (++_depth > MaxDepth) throw new JinjaException($"recursion deeper than {MaxDepth}");
    }

    private object? Eval(JinjaExpr e, Scope scope)
    {
        switch (e)
        {
            case LiteralExpr l: return l.Value;
            case NameExpr n: return scope.Lookup(n.Name);
            case ListExpr l: return l.Items.Select(i => Eval(i, scope)).ToList();
            case DictExpr d:
            {
                var dict = new Dictionary<string, object?>();
                foreach (var (k, v) in d.Items) dict[ToText(Eval(k, scope))] = Eval(v, scope);
                return dict;
            }
            case AttributeExpr a: return JinjaBuiltins.GetAttribute(Eval(a.Target, scope), a.Name);
            case IndexExpr i: return JinjaBuiltins.GetItem(Eval(i.Target, scope), Eval(i.Index, scope), i.Position);
            case SliceExpr s:
                return JinjaBuiltins.Slice(Eval(s.Target, scope), EvalOptional(s.Start, scope), EvalOptional(s.Stop, scope), EvalOptional(s.Step, scope), s.Position);
            case CallExpr c:
            {
                var function = Eval(c.Function, scope);
                if (function is not JinjaCallable callable)
                    throw new JinjaException($"{Describe(c.Function)} is not callable ({TypeName(function)})", c.Position);
                Enter();
                try { return callable(c.Args.Select(a => Eval(a, scope)).ToList(), c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope))); }
                finally { _depth--; }
            }
            case FilterExpr f:
                return JinjaBuiltins.ApplyFilter(f.Name, Eval(f.Target, scope), f.Args.Select(a => Eval(a, scope)).ToList(),
                    f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope)), f.Position);
            case TestExpr t:
            {
                bool result = JinjaBuiltins.ApplyTest(t.Name, Eval(t.Target, scope), t.Args.Select(a => Eval(a, scope)).ToList(), t.Position);
                return result != t.Negated;
            }
            case UnaryExpr u:
            {
                var v = Eval(u.Operand, scope);
                return u.Op == "not" ? !Truthy(v) : v is long l ? -l : (object)-ToDouble(v);
            }
            case BinaryExpr b:
                if (b.Op == "and") { var l = Eval(b.Left, scope); return Truthy(l) ? Eval(b.Right, scope) : l; }
                if (b.Op == "or") { var l = Eval(b.Left, scope); return Truthy(l) ? l : Eval(b.Right, scope); }
                return JinjaBuiltins.Binary(b.Op, Eval(b.Left, scope), Eval(b.Right, scope), b.Position);
            case ConditionalExpr c:
                return Truthy(Eval(c.Condition, scope)) ? Eval(c.Then, scope) : c.Else is null ? JinjaUndefined.Instance : Eval(c.Else, scope);
            default:
                throw new JinjaException($"unknown expression {e.GetType().Name}", e.Position);
        }
    }

    private object? EvalOptional(JinjaExpr? e, Scope scope) => e is null ? null : Eval(e, scope);

    private static string Describe(JinjaExpr e) => e switch
    {
        NameExpr n => $"'{n.Name}'",
        AttributeExpr a => $"'{a.Name}'",
        _ => "the expression",
    };
}
