namespace AnyBit.Text.Templates;

// The syntax tree of the Jinja subset chat templates use. Statements render output; expressions produce values.

internal abstract record JinjaNode;
internal sealed record TextNode(string Text) : JinjaNode;
internal sealed record OutputNode(JinjaExpr Value) : JinjaNode;
internal sealed record IfNode(List<(JinjaExpr Condition, List<JinjaNode> Body)> Branches, List<JinjaNode>? Else) : JinjaNode;
internal sealed record ForNode(List<string> Targets, JinjaExpr Iterable, JinjaExpr? Filter, List<JinjaNode> Body, List<JinjaNode>? Else) : JinjaNode;
/// <summary><c>{% set x = e %}</c>, <c>{% set ns.attr = e %}</c>, <c>{% set a, b = e %}</c> or a block set (Value null, Body set).</summary>
internal sealed record SetNode(List<string> Targets, string? Attribute, JinjaExpr? Value, List<JinjaNode>? Body) : JinjaNode;
internal sealed record MacroNode(string Name, List<(string Name, JinjaExpr? Default)> Parameters, List<JinjaNode> Body) : JinjaNode;
internal sealed record BreakNode : JinjaNode;
internal sealed record ContinueNode : JinjaNode;

internal abstract record JinjaExpr(int Position);
internal sealed record LiteralExpr(object? Value, int Position) : JinjaExpr(Position);
internal sealed record NameExpr(string Name, int Position) : JinjaExpr(Position);
internal sealed record ListExpr(List<JinjaExpr> Items, int Position) : JinjaExpr(Position);
internal sealed record DictExpr(List<(JinjaExpr Key, JinjaExpr Value)> Items, int Position) : JinjaExpr(Position);
internal sealed record AttributeExpr(JinjaExpr Target, string Name, int Position) : JinjaExpr(Position);
internal sealed record IndexExpr(JinjaExpr Target, JinjaExpr Index, int Position) : JinjaExpr(Position);
internal sealed record SliceExpr(JinjaExpr Target, JinjaExpr? Start, JinjaExpr? Stop, JinjaExpr? Step, int Position) : JinjaExpr(Position);
internal sealed record CallExpr(JinjaExpr Function, List<JinjaExpr> Args, List<(string Name, JinjaExpr Value)> Kwargs, int Position) : JinjaExpr(Position);
internal sealed record FilterExpr(JinjaExpr Target, string Name, List<JinjaExpr> Args, List<(string Name, JinjaExpr Value)> Kwargs, int Position) : JinjaExpr(Position);
internal sealed record TestExpr(JinjaExpr Target, string Name, bool Negated, List<JinjaExpr> Args, int Position) : JinjaExpr(Position);
internal sealed record UnaryExpr(string Op, JinjaExpr Operand, int Position) : JinjaExpr(Position);
internal sealed record BinaryExpr(string Op, JinjaExpr Left, JinjaExpr Right, int Position) : JinjaExpr(Position);
internal sealed record ConditionalExpr(JinjaExpr Condition, JinjaExpr Then, JinjaExpr? Else, int Position) : JinjaExpr(Position);
