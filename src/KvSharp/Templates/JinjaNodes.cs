namespace KvSharp.Templates;

/// <summary>A node of a parsed template, with the line and column (1-based) where it starts, for error messages.</summary>
internal abstract record JinjaNode(int Line, int Column);

// Statements: what a template body is made of.
internal sealed record TextNode(string Text, int Line, int Column) : JinjaNode(Line, Column);
internal sealed record OutputNode(JinjaExpr Value, int Line, int Column) : JinjaNode(Line, Column);
internal sealed record IfNode(IReadOnlyList<(JinjaExpr Test, IReadOnlyList<JinjaNode> Body)> Branches, IReadOnlyList<JinjaNode>? Else, int Line, int Column) : JinjaNode(Line, Column);
internal sealed record ForNode(IReadOnlyList<string> Targets, JinjaExpr Iterable, JinjaExpr? Filter, IReadOnlyList<JinjaNode> Body, IReadOnlyList<JinjaNode>? Else, int Line, int Column) : JinjaNode(Line, Column);
/// <summary>{% set x = v %}, {% set a, b = v %}, {% set ns.attr = v %} (Namespace set when <paramref name="Attribute"/> is given).</summary>
internal sealed record SetNode(IReadOnlyList<string> Targets, string? Attribute, JinjaExpr Value, int Line, int Column) : JinjaNode(Line, Column);
/// <summary>{% set x %}...{% endset %}: x becomes the rendered body.</summary>
internal sealed record SetBlockNode(string Target, IReadOnlyList<JinjaNode> Body, int Line, int Column) : JinjaNode(Line, Column);
internal sealed record MacroNode(string Name, IReadOnlyList<(string Name, JinjaExpr? Default)> Parameters, IReadOnlyList<JinjaNode> Body, int Line, int Column) : JinjaNode(Line, Column);
/// <summary>{% filter name(args) %}...{% endfilter %}: the rendered body passed through a filter.</summary>
/// <summary>{% call(params) macro(args) %}body{% endcall %}: the macro is called with caller() rendering the body.</summary>
internal sealed record CallBlockNode(CallExpr Call, IReadOnlyList<string> CallerParameters, IReadOnlyList<JinjaNode> Body, int Line, int Column) : JinjaNode(Line, Column);
internal sealed record FilterBlockNode(FilterExpr Filter, IReadOnlyList<JinjaNode> Body, int Line, int Column) : JinjaNode(Line, Column);
internal sealed record BreakNode(int Line, int Column) : JinjaNode(Line, Column);
internal sealed record ContinueNode(int Line, int Column) : JinjaNode(Line, Column);

// Expressions.
internal abstract record JinjaExpr(int Line, int Column) : JinjaNode(Line, Column);
internal sealed record LiteralExpr(object? Value, int Line, int Column) : JinjaExpr(Line, Column);
internal sealed record NameExpr(string Name, int Line, int Column) : JinjaExpr(Line, Column);
/// <summary>[a, b], or a tuple (a, b) when <paramref name="IsTuple"/>.</summary>
internal sealed record ListExpr(IReadOnlyList<JinjaExpr> Items, int Line, int Column, bool IsTuple = false) : JinjaExpr(Line, Column);
internal sealed record DictExpr(IReadOnlyList<(JinjaExpr Key, JinjaExpr Value)> Items, int Line, int Column) : JinjaExpr(Line, Column);
internal sealed record AttributeExpr(JinjaExpr Target, string Name, int Line, int Column) : JinjaExpr(Line, Column);
internal sealed record IndexExpr(JinjaExpr Target, JinjaExpr Index, int Line, int Column) : JinjaExpr(Line, Column);
internal sealed record SliceExpr(JinjaExpr Target, JinjaExpr? Start, JinjaExpr? Stop, JinjaExpr? Step, int Line, int Column) : JinjaExpr(Line, Column);
internal sealed record CallExpr(JinjaExpr Callee, IReadOnlyList<JinjaExpr> Args, IReadOnlyList<(string Name, JinjaExpr Value)> Kwargs, int Line, int Column) : JinjaExpr(Line, Column);
/// <summary>value | name(args): <paramref name="Value"/> is null inside a {% filter %} block (the body is the value).</summary>
internal sealed record FilterExpr(JinjaExpr? Value, string Name, IReadOnlyList<JinjaExpr> Args, IReadOnlyList<(string Name, JinjaExpr Value)> Kwargs, int Line, int Column) : JinjaExpr(Line, Column);
/// <summary>value is [not] name(args).</summary>
internal sealed record TestExpr(JinjaExpr Value, string Name, IReadOnlyList<JinjaExpr> Args, bool Negated, int Line, int Column) : JinjaExpr(Line, Column);
/// <summary>not, unary - and +.</summary>
internal sealed record UnaryExpr(string Operator, JinjaExpr Operand, int Line, int Column) : JinjaExpr(Line, Column);
/// <summary>Arithmetic, ~, comparisons, in / not in, and / or.</summary>
internal sealed record BinaryExpr(string Operator, JinjaExpr Left, JinjaExpr Right, int Line, int Column) : JinjaExpr(Line, Column);
internal sealed record ConditionalExpr(JinjaExpr Test, JinjaExpr Then, JinjaExpr? Else, int Line, int Column) : JinjaExpr(Line, Column);
