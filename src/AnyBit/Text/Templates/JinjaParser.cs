namespace AnyBit.Text.Templates;

/// <summary>
/// Recursive-descent parser for the Jinja subset. Operator precedence follows Jinja's own parser: conditional
/// expression, or, and, not, comparisons (in, not in, ==, ...), + and -, ~, * / // %, **, unary minus, then
/// postfix (attribute, index, slice, call), filters and tests — so <c>a + b|length</c> is <c>a + (b|length)</c>.
/// </summary>
internal sealed class JinjaParser
{
    private readonly List<JinjaToken> _t;
    private int _p;

    private JinjaParser(List<JinjaToken> tokens) => _t = tokens;

    public static List<JinjaNode> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        var body = parser.ParseBody(out string? stop);
        if (stop is not null) throw new JinjaException($"unexpected {{% {stop} %}}", parser.Peek.Position);
        return body;
    }

    private JinjaToken Peek => _t[_p];
    private JinjaToken Next() => _t[_p++];

    /// <summary>Parses nodes until a block tag whose keyword is one of <paramref name="stopAt"/> (left unconsumed after the keyword).</summary>
    private List<JinjaNode> ParseBody(out string? stoppedAt, params string[] stopAt)
    {
        var nodes = new List<JinjaNode>();
        while (true)
        {
            var tok = Peek;
            switch (tok.Kind)
            {
                case JinjaTokenKind.End:
                    if (stopAt.Length > 0) throw new JinjaException($"missing {{% {stopAt[^1]} %}}", tok.Position);
                    stoppedAt = null;
                    return nodes;
                case JinjaTokenKind.Text:
                    _p++;
                    nodes.Add(new TextNode(tok.Text));
                    break;
                case JinjaTokenKind.VariableStart:
                    _p++;
                    nodes.Add(new OutputNode(ParseExpression()));
                    Expect(JinjaTokenKind.VariableEnd, "}}");
                    break;
                case JinjaTokenKind.BlockStart:
                    var keyword = _t[_p + 1];
                    if (keyword.Kind != JinjaTokenKind.Name) throw new JinjaException("expected a statement name after {%", keyword.Position);
                    if (Array.IndexOf(stopAt, keyword.Text) >= 0)
                    {
                        _p += 2;
                        stoppedAt = keyword.Text;
                        return nodes;
                    }
                    _p += 2;
                    var node = ParseStatement(keyword);
                    if (node is not null) nodes.Add(node);
                    break;
                default:
                    throw new JinjaException($"unexpected '{tok.Text}'", tok.Position);
            }
        }
    }

    private JinjaNode? ParseStatement(JinjaToken keyword)
    {
        switch (keyword.Text)
        {
            case "if": return ParseIf();
            case "for": return ParseFor();
            case "set": return ParseSet();
            case "macro": return ParseMacro();
            case "break": EndBlock(); return new BreakNode();
            case "continue": EndBlock(); return new ContinueNode();
            case "generation":
            {
                // transformers' {% generation %} marks assistant spans for training masks; it renders its body.
                EndBlock();
                var body = ParseBody(out _, "endgeneration");
                EndBlock();
                return new IfNode([(new LiteralExpr(true, keyword.Position), body)], null);
            }
            default:
                throw new JinjaException($"unsupported statement '{keyword.Text}'", keyword.Position);
        }
    }

    private IfNode ParseIf()
    {
        var branches = new List<(JinjaExpr, List<JinjaNode>)>();
        List<JinjaNode>? elseBody = null;
        var condition = ParseExpression();
        while (true)
        {
            EndBlock();
            var body = ParseBody(out string? stop, "elif", "else", "endif");
            branches.Add((condition, body));
            if (stop == "elif") { condition = ParseExpression(); continue; }
            if (stop == "else")
            {
                EndBlock();
                elseBody = ParseBody(out _, "endif");
            }
            EndBlock();
            return new IfNode(branches, elseBody);
        }
    }

    private ForNode ParseFor()
    {
        var targets = new List<string> { ExpectName() };
        while (AcceptOperator(",")) targets.Add(ExpectName());
        if (ExpectName() != "in") throw new JinjaException("expected 'in' in a for loop", Peek.Position);
        var iterable = ParseOr(allowConditional: false);
        JinjaExpr? filter = null;
        if (Peek is { Kind: JinjaTokenKind.Name, Text: "if" }) { _p++; filter = ParseOr(allowConditional: false); }
        if (Peek is { Kind: JinjaTokenKind.Name, Text: "recursive" }) throw new JinjaException("recursive loops are not supported", Peek.Position);
        EndBlock();
        var body = ParseBody(out string? stop, "else", "endfor");
        List<JinjaNode>? elseBody = null;
        if (stop == "else")
        {
            EndBlock();
            elseBody = ParseBody(out _, "endfor");
        }
        EndBlock();
        return new ForNode(targets, iterable, filter, body, elseBody);
    }

    private SetNode ParseSet()
    {
        var targets = new List<string> { ExpectName() };
        string? attribute = null;
        if (AcceptOperator(".")) attribute = ExpectName();
        else while (AcceptOperator(",")) targets.Add(ExpectName());
        if (AcceptOperator("="))
        {
            var value = ParseTuple();
            EndBlock();
            return new SetNode(targets, attribute, value, null);
        }
        EndBlock();
        var body = ParseBody(out _, "endset");
        EndBlock();
        return new SetNode(targets, attribute, null, body);
    }

    private MacroNode ParseMacro()
    {
        string name = ExpectName();
        Expect(JinjaTokenKind.Operator, "(");
        var parameters = new List<(string, JinjaExpr?)>();
        while (!AcceptOperator(")"))
        {
            if (parameters.Count > 0) Expect(JinjaTokenKind.Operator, ",");
            string p = ExpectName();
            parameters.Add((p, AcceptOperator("=") ? ParseExpression() : null));
        }
        EndBlock();
        var body = ParseBody(out _, "endmacro");
        EndBlock();
        return new MacroNode(name, parameters, body);
    }

    private void EndBlock() => Expect(JinjaTokenKind.BlockEnd, "%}");

    private void Expect(JinjaTokenKind kind, string text)
    {
        var tok = Next();
        if (tok.Kind != kind || (kind == JinjaTokenKind.Operator && tok.Text != text))
            throw new JinjaException($"expected '{text}' but found '{Describe(tok)}'", tok.Position);
    }

    private string ExpectName()
    {
        var tok = Next();
        if (tok.Kind != JinjaTokenKind.Name) throw new JinjaException($"expected a name but found '{Describe(tok)}'", tok.Position);
        return tok.Text;
    }

    private static string Describe(JinjaToken tok) => tok.Kind switch
    {
        JinjaTokenKind.BlockEnd => "%}",
        JinjaTokenKind.VariableEnd => "}}",
        JinjaTokenKind.End => "end of template",
        _ => tok.Text,
    };

    private bool AcceptOperator(string op)
    {
        if (Peek.Kind != JinjaTokenKind.Operator || Peek.Text != op) return false;
        _p++;
        return true;
    }

    private bool AcceptName(string name)
    {
        if (Peek.Kind != JinjaTokenKind.Name || Peek.Text != name) return false;
        _p++;
        return true;
    }

    /// <summary>An expression, or a bare tuple <c>a, b</c> (as a list) where a statement allows one.</summary>
    private JinjaExpr ParseTuple()
    {
        var first = ParseExpression();
        if (Peek.Kind != JinjaTokenKind.Operator || Peek.Text != ",") return first;
        var items = new List<JinjaExpr> { first };
        while (AcceptOperator(",")) items.Add(ParseExpression());
        return new ListExpr(items, first.Position);
    }

    public JinjaExpr ParseExpression() => ParseOr(allowConditional: true);

    private JinjaExpr ParseOr(bool allowConditional)
    {
        var left = ParseAnd();
        while (AcceptName("or")) left = new BinaryExpr("or", left, ParseAnd(), left.Position);
        if (allowConditional && AcceptName("if"))
        {
            var condition = ParseOr(allowConditional: false);
            JinjaExpr? otherwise = AcceptName("else") ? ParseOr(allowConditional: true) : null;
            return new ConditionalExpr(condition, left, otherwise, left.Position);
        }
        return left;
    }

    private JinjaExpr ParseAnd()
    {
        var left = ParseNot();
        while (AcceptName("and")) left = new BinaryExpr("and", left, ParseNot(), left.Position);
        return left;
    }

    private JinjaExpr ParseNot()
    {
        int pos = Peek.Position;
        return AcceptName("not") ? new UnaryExpr("not", ParseNot(), pos) : ParseCompare();
    }

    private JinjaExpr ParseCompare()
    {
        var left = ParseAdd();
        while (true)
        {
            var tok = Peek;
            if (tok.Kind == JinjaTokenKind.Operator && tok.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                _p++;
                left = new BinaryExpr(tok.Text, left, ParseAdd(), tok.Position);
            }
            else if (tok is { Kind: JinjaTokenKind.Name, Text: "in" })
            {
                _p++;
                left = new BinaryExpr("in", left, ParseAdd(), tok.Position);
            }
            else if (tok is { Kind: JinjaTokenKind.Name, Text: "not" } && _t[_p + 1] is { Kind: JinjaTokenKind.Name, Text: "in" })
            {
                _p += 2;
                left = new UnaryExpr("not", new BinaryExpr("in", left, ParseAdd(), tok.Position), tok.Position);
            }
            else return left;
        }
    }

    private JinjaExpr ParseAdd()
    {
        var left = ParseConcat();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Text is "+" or "-")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParseConcat(), op.Position);
        }
        return left;
    }

    private JinjaExpr ParseConcat()
    {
        var left = ParseMultiply();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Text == "~")
        {
            var op = Next();
            left = new BinaryExpr("~", left, ParseMultiply(), op.Position);
        }
        return left;
    }

    private JinjaExpr ParseMultiply()
    {
        var left = ParsePower();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Text is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParsePower(), op.Position);
        }
        return left;
    }

    private JinjaExpr ParsePower()
    {
        var left = ParseUnary();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Text == "**")
        {
            var op = Next();
            left = new BinaryExpr("**", left, ParseUnary(), op.Position);
        }
        return left;
    }

    private JinjaExpr ParseUnary()
    {
        var tok = Peek;
        if (tok.Kind == JinjaTokenKind.Operator && tok.Text is "-" or "+")
        {
            _p++;
            var operand = ParseUnary();
            return tok.Text == "-" ? new UnaryExpr("-", operand, tok.Position) : operand;
        }
        return ParseFiltersAndTests(ParsePostfix(ParsePrimary()));
    }

    private JinjaExpr ParsePrimary()
    {
        var tok = Next();
        switch (tok.Kind)
        {
            case JinjaTokenKind.String:
            {
                string text = (string)tok.Value!;
                // Adjacent string literals concatenate, as in Python.
                while (Peek.Kind == JinjaTokenKind.String) text += (string)Next().Value!;
                return new LiteralExpr(text, tok.Position);
            }
            case JinjaTokenKind.Integer:
            case JinjaTokenKind.Float:
                return new LiteralExpr(tok.Value, tok.Position);
            case JinjaTokenKind.Name:
                return tok.Text switch
                {
                    "true" or "True" => new LiteralExpr(true, tok.Position),
                    "false" or "False" => new LiteralExpr(false, tok.Position),
                    "none" or "None" => new LiteralExpr(null, tok.Position),
                    _ => new NameExpr(tok.Text, tok.Position),
                };
            case JinjaTokenKind.Operator when tok.Text == "(":
            {
                var inner = ParseTuple();
                Expect(JinjaTokenKind.Operator, ")");
                return inner;
            }
            case JinjaTokenKind.Operator when tok.Text == "[":
            {
                var items = new List<JinjaExpr>();
                while (!AcceptOperator("]"))
                {
                    if (items.Count > 0) { Expect(JinjaTokenKind.Operator, ","); if (AcceptOperator("]")) break; }
                    items.Add(ParseExpression());
                }
                return new ListExpr(items, tok.Position);
            }
            case JinjaTokenKind.Operator when tok.Text == "{":
            {
                var items = new List<(JinjaExpr, JinjaExpr)>();
                while (!AcceptOperator("}"))
                {
                    if (items.Count > 0) { Expect(JinjaTokenKind.Operator, ","); if (AcceptOperator("}")) break; }
                    var key = ParseExpression();
                    Expect(JinjaTokenKind.Operator, ":");
                    items.Add((key, ParseExpression()));
                }
                return new DictExpr(items, tok.Position);
            }
            default:
                throw new JinjaException($"unexpected '{Describe(tok)}' in an expression", tok.Position);
        }
    }

    private JinjaExpr ParsePostfix(JinjaExpr target)
    {
        while (true)
        {
            var tok = Peek;
            if (tok.Kind != JinjaTokenKind.Operator) return target;
            if (tok.Text == ".")
            {
                _p++;
                target = new AttributeExpr(target, ExpectName(), tok.Position);
            }
            else if (tok.Text == "[")
            {
                _p++;
                target = ParseSubscript(target, tok.Position);
            }
            else if (tok.Text == "(")
            {
                _p++;
                var (args, kwargs) = ParseArguments();
                target = new CallExpr(target, args, kwargs, tok.Position);
            }
            else return target;
        }
    }

    private JinjaExpr ParseSubscript(JinjaExpr target, int pos)
    {
        JinjaExpr? start = null, stop = null, step = null;
        if (!(Peek.Kind == JinjaTokenKind.Operator && Peek.Text == ":")) start = ParseExpression();
        if (AcceptOperator("]")) return new IndexExpr(target, start!, pos);
        Expect(JinjaTokenKind.Operator, ":");
        if (!(Peek.Kind == JinjaTokenKind.Operator && Peek.Text is ":" or "]")) stop = ParseExpression();
        if (AcceptOperator(":") && !(Peek.Kind == JinjaTokenKind.Operator && Peek.Text == "]")) step = ParseExpression();
        Expect(JinjaTokenKind.Operator, "]");
        return new SliceExpr(target, start, stop, step, pos);
    }

    /// <summary>Arguments after an opening parenthesis, through the closing one.</summary>
    private (List<JinjaExpr>, List<(string, JinjaExpr)>) ParseArguments()
    {
        var args = new List<JinjaExpr>();
        var kwargs = new List<(string, JinjaExpr)>();
        while (!AcceptOperator(")"))
        {
            if (args.Count + kwargs.Count > 0) { Expect(JinjaTokenKind.Operator, ","); if (AcceptOperator(")")) break; }
            if (Peek.Kind == JinjaTokenKind.Name && _t[_p + 1] is { Kind: JinjaTokenKind.Operator, Text: "=" })
            {
                string name = Next().Text;
                _p++;
                kwargs.Add((name, ParseExpression()));
            }
            else args.Add(ParseExpression());
        }
        return (args, kwargs);
    }

    private JinjaExpr ParseFiltersAndTests(JinjaExpr target)
    {
        while (true)
        {
            var tok = Peek;
            if (tok is { Kind: JinjaTokenKind.Operator, Text: "|" })
            {
                _p++;
                string name = ExpectName();
                var (args, kwargs) = AcceptOperator("(") ? ParseArguments() : ([], []);
                target = ParsePostfix(new FilterExpr(target, name, args, kwargs, tok.Position));
            }
            else if (tok is { Kind: JinjaTokenKind.Name, Text: "is" })
            {
                _p++;
                bool negated = AcceptName("not");
                string name = ExpectName();
                var args = new List<JinjaExpr>();
                if (AcceptOperator("(")) args = ParseArguments().Item1;
                else if (Peek.Kind is JinjaTokenKind.String or JinjaTokenKind.Integer or JinjaTokenKind.Float) args.Add(ParsePrimary());
                target = new TestExpr(target, name, negated, args, tok.Position);
            }
            else return target;
        }
    }
}
