using System.Globalization;

namespace KvSharp.Templates;

/// <summary>
/// Builds the syntax tree of a template from its tokens, with Jinja2's statements (if/elif/else, for with loop
/// filters and else, set incl. block set and namespace attributes, macro, filter blocks, break/continue,
/// generation) and its expression precedence: conditional, or, and, not, comparisons and in, + and -, ~, * / // %,
/// **, unary minus, then postfix access (.attr, [index], [a:b:c], calls), filters (|) and tests (is).
/// </summary>
internal sealed class JinjaParser
{
    private readonly string _name;
    private readonly List<JinjaToken> _tokens;
    private int _pos;

    private JinjaParser(string name, List<JinjaToken> tokens)
    {
        _name = name;
        _tokens = tokens;
    }

    public static IReadOnlyList<JinjaNode> Parse(string name, string source)
    {
        var parser = new JinjaParser(name, JinjaLexer.Tokenize(name, source));
        var body = parser.ParseBody(out var end);
        if (end != null) throw parser.Error(end.Value, $"unexpected '{{% {end.Value.Value} %}}' with no block open");
        return body;
    }

    private JinjaToken Peek(int ahead = 0) => _tokens[Math.Min(_pos + ahead, _tokens.Count - 1)];
    private JinjaToken Next() => _tokens[Math.Min(_pos++, _tokens.Count - 1)];

    private JinjaToken Expect(JinjaTokenKind kind, string? value = null, string? what = null)
    {
        var t = Peek();
        if (t.Kind != kind || (value != null && t.Value != value))
            throw Error(t, $"expected {what ?? (value != null ? $"'{value}'" : kind.ToString().ToLowerInvariant())}, found {t}");
        return Next();
    }

    private bool Accept(string op)
    {
        if (!Peek().IsOperator(op)) return false;
        _pos++;
        return true;
    }

    private bool AcceptName(string name)
    {
        if (!Peek().IsName(name)) return false;
        _pos++;
        return true;
    }

    private TemplateException Error(JinjaToken at, string message) => new(_name, at.Line, at.Column, message);

    /// <summary>
    /// Parses nodes until the end of the template or a block tag this level does not handle (endif, else, endfor ...);
    /// that tag's name token is returned in <paramref name="end"/> with the position left on it.
    /// </summary>
    private List<JinjaNode> ParseBody(out JinjaToken? end)
    {
        var nodes = new List<JinjaNode>();
        while (true)
        {
            var t = Peek();
            switch (t.Kind)
            {
                case JinjaTokenKind.End:
                    end = null;
                    return nodes;
                case JinjaTokenKind.Text:
                    Next();
                    nodes.Add(new TextNode(t.Value, t.Line, t.Column));
                    break;
                case JinjaTokenKind.VariableBegin:
                    Next();
                    var value = ParseExpression();
                    Expect(JinjaTokenKind.VariableEnd, what: "'}}'");
                    nodes.Add(new OutputNode(value, t.Line, t.Column));
                    break;
                case JinjaTokenKind.BlockBegin:
                    var keyword = Peek(1);
                    if (keyword.Kind != JinjaTokenKind.Name) throw Error(keyword, $"expected a statement name after '{{%', found {keyword}");
                    if (keyword.Value is "endif" or "elif" or "else" or "endfor" or "endset" or "endmacro" or "endfilter" or "endgeneration" or "endcall")
                    {
                        _pos++; // leave the position on the keyword for the caller
                        end = keyword;
                        return nodes;
                    }
                    _pos += 2;
                    var statement = ParseStatement(keyword);
                    if (statement != null) nodes.Add(statement);
                    break;
                default:
                    throw Error(t, $"unexpected {t}");
            }
        }
    }

    private List<JinjaNode> ParseBlockUntil(JinjaToken opener, params string[] enders)
    {
        var body = ParseBody(out var end);
        if (end == null || Array.IndexOf(enders, end.Value.Value) < 0)
            throw Error(end ?? Peek(), $"'{{% {opener.Value} %}}' at line {opener.Line}, column {opener.Column} is never closed: expected {string.Join(" or ", enders.Select(e => $"'{{% {e} %}}'"))}, found {(end == null ? "the end of the template" : $"'{{% {end.Value.Value} %}}'")}");
        return body;
    }

    private JinjaNode? ParseStatement(JinjaToken keyword)
    {
        switch (keyword.Value)
        {
            case "if": return ParseIf(keyword);
            case "for": return ParseFor(keyword);
            case "set": return ParseSet(keyword);
            case "macro": return ParseMacro(keyword);
            case "call": return ParseCallBlock(keyword);
            case "filter":
            {
                var filter = ParseFilterCall(null, Peek());
                Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
                var body = ParseBlockUntil(keyword, "endfilter");
                EndTag();
                return new FilterBlockNode(filter, body, keyword.Line, keyword.Column);
            }
            case "break" or "continue":
                Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
                return keyword.Value == "break" ? new BreakNode(keyword.Line, keyword.Column) : new ContinueNode(keyword.Line, keyword.Column);
            case "generation":
            {
                // Hugging Face's marker for assistant tokens in training masks: renders its body unchanged.
                Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
                var body = ParseBlockUntil(keyword, "endgeneration");
                EndTag();
                return new IfNode([(new LiteralExpr(true, keyword.Line, keyword.Column), body)], null, keyword.Line, keyword.Column);
            }
            default:
                throw Error(keyword, $"unknown statement '{keyword.Value}' (supported: if, for, set, macro, call, filter, break, continue, generation)");
        }
    }

    /// <summary>Consumes the end keyword the position is on and its '%}'.</summary>
    private void EndTag()
    {
        Next();
        Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
    }

    private IfNode ParseIf(JinjaToken keyword)
    {
        var branches = new List<(JinjaExpr, IReadOnlyList<JinjaNode>)>();
        List<JinjaNode>? elseBody = null;
        var test = ParseExpression();
        Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
        while (true)
        {
            var body = ParseBlockUntil(keyword, "elif", "else", "endif");
            branches.Add((test, body));
            var end = Next();
            if (end.Value == "elif")
            {
                test = ParseExpression();
                Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
                continue;
            }
            Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
            if (end.Value == "else")
            {
                elseBody = ParseBlockUntil(keyword, "endif");
                EndTag();
            }
            return new IfNode(branches, elseBody, keyword.Line, keyword.Column);
        }
    }

    private ForNode ParseFor(JinjaToken keyword)
    {
        var targets = new List<string>();
        bool parenthesized = Accept("(");
        do targets.Add(Expect(JinjaTokenKind.Name, what: "a loop variable name").Value);
        while (Accept(","));
        if (parenthesized) Expect(JinjaTokenKind.Operator, ")");
        if (!AcceptName("in")) throw Error(Peek(), $"expected 'in' after the loop variables, found {Peek()}");
        var iterable = ParseOr(); // not ParseExpression: "x if cond" after the iterable is the loop filter
        JinjaExpr? filter = AcceptName("if") ? ParseOr() : null;
        AcceptName("recursive");
        Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
        var body = ParseBlockUntil(keyword, "else", "endfor");
        List<JinjaNode>? elseBody = null;
        if (Next().Value == "else")
        {
            Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
            elseBody = ParseBlockUntil(keyword, "endfor");
            Next();
        }
        Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
        return new ForNode(targets, iterable, filter, body, elseBody, keyword.Line, keyword.Column);
    }

    private JinjaNode ParseSet(JinjaToken keyword)
    {
        var first = Expect(JinjaTokenKind.Name, what: "a variable name");
        if (Accept("."))
        {
            var attribute = Expect(JinjaTokenKind.Name, what: "an attribute name");
            Expect(JinjaTokenKind.Operator, "=");
            var value = ParseExpression();
            Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
            return new SetNode([first.Value], attribute.Value, value, keyword.Line, keyword.Column);
        }
        var targets = new List<string> { first.Value };
        while (Accept(",")) targets.Add(Expect(JinjaTokenKind.Name, what: "a variable name").Value);
        if (targets.Count == 1 && Peek().Kind == JinjaTokenKind.BlockEnd)
        {
            Next();
            var body = ParseBlockUntil(keyword, "endset");
            EndTag();
            return new SetBlockNode(first.Value, body, keyword.Line, keyword.Column);
        }
        Expect(JinjaTokenKind.Operator, "=");
        var expr = ParseTupleOrExpression();
        Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
        return new SetNode(targets, null, expr, keyword.Line, keyword.Column);
    }

    private MacroNode ParseMacro(JinjaToken keyword)
    {
        var name = Expect(JinjaTokenKind.Name, what: "a macro name");
        Expect(JinjaTokenKind.Operator, "(");
        var parameters = new List<(string, JinjaExpr?)>();
        while (!Accept(")"))
        {
            if (parameters.Count > 0) Expect(JinjaTokenKind.Operator, ",");
            if (Accept(")")) break;
            var p = Expect(JinjaTokenKind.Name, what: "a parameter name");
            parameters.Add((p.Value, Accept("=") ? ParseExpression() : null));
        }
        Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
        var body = ParseBlockUntil(keyword, "endmacro");
        EndTag();
        return new MacroNode(name.Value, parameters, body, keyword.Line, keyword.Column);
    }

    /// <summary>{% call(params) name(args) %}...{% endcall %}: the parameters caller() takes, then the macro call.</summary>
    private CallBlockNode ParseCallBlock(JinjaToken keyword)
    {
        var parameters = new List<string>();
        if (Accept("("))
            while (!Accept(")"))
            {
                if (parameters.Count > 0) Expect(JinjaTokenKind.Operator, ",");
                if (Accept(")")) break;
                parameters.Add(Expect(JinjaTokenKind.Name, what: "a caller parameter name").Value);
            }
        if (ParseExpression() is not CallExpr call) throw Error(keyword, "{% call %} needs a macro call, as in {% call name(args) %}");
        Expect(JinjaTokenKind.BlockEnd, what: "'%}'");
        var body = ParseBlockUntil(keyword, "endcall");
        EndTag();
        return new CallBlockNode(call, parameters, body, keyword.Line, keyword.Column);
    }

    /// <summary>An expression, or several separated by commas (a tuple, evaluated as a list).</summary>
    private JinjaExpr ParseTupleOrExpression()
    {
        var start = Peek();
        var first = ParseExpression();
        if (!Peek().IsOperator(",")) return first;
        var items = new List<JinjaExpr> { first };
        while (Accept(",")) items.Add(ParseExpression());
        return new ListExpr(items, start.Line, start.Column, IsTuple: true);
    }

    public JinjaExpr ParseExpression()
    {
        var start = Peek();
        var value = ParseOr();
        if (!AcceptName("if")) return value;
        var test = ParseOr();
        JinjaExpr? otherwise = AcceptName("else") ? ParseExpression() : null;
        return new ConditionalExpr(test, value, otherwise, start.Line, start.Column);
    }

    private JinjaExpr ParseOr() => ParseLeftAssociative(ParseAnd, t => t.IsName("or"));

    private JinjaExpr ParseAnd() => ParseLeftAssociative(ParseNot, t => t.IsName("and"));

    /// <summary>operand (op operand)*, grouped from the left: a - b - c is (a - b) - c.</summary>
    private JinjaExpr ParseLeftAssociative(Func<JinjaExpr> operand, Func<JinjaToken, bool> isOperator)
    {
        var left = operand();
        while (isOperator(Peek()))
        {
            var op = Next();
            left = new BinaryExpr(op.Value, left, operand(), op.Line, op.Column);
        }
        return left;
    }

    private JinjaExpr ParseNot()
    {
        if (!Peek().IsName("not")) return ParseCompare();
        var op = Next();
        return new UnaryExpr("not", ParseNot(), op.Line, op.Column);
    }

    private JinjaExpr ParseCompare()
    {
        var left = ParseAdditive();
        JinjaExpr? chain = null;
        while (true)
        {
            var t = Peek();
            string? op = null;
            if (t.Kind == JinjaTokenKind.Operator && t.Value is "==" or "!=" or "<" or ">" or "<=" or ">=") op = t.Value;
            else if (t.IsName("in")) op = "in";
            else if (t.IsName("not") && Peek(1).IsName("in")) { _pos++; op = "not in"; }
            if (op == null) return chain ?? left;
            Next();
            var right = ParseAdditive();
            // a < b < c means a < b and b < c, as in Python.
            var comparison = new BinaryExpr(op, left, right, t.Line, t.Column);
            chain = chain == null ? comparison : new BinaryExpr("and", chain, comparison, t.Line, t.Column);
            left = right;
        }
    }

    private JinjaExpr ParseAdditive() => ParseLeftAssociative(ParseConcat, t => t.Kind == JinjaTokenKind.Operator && t.Value is "+" or "-");

    private JinjaExpr ParseConcat() => ParseLeftAssociative(ParseMultiplicative, t => t.IsOperator("~"));

    private JinjaExpr ParseMultiplicative() => ParseLeftAssociative(ParsePower, t => t.Kind == JinjaTokenKind.Operator && t.Value is "*" or "/" or "//" or "%");

    private JinjaExpr ParsePower() => ParseLeftAssociative(ParseUnary, t => t.IsOperator("**"));

    private JinjaExpr ParseUnary()
    {
        var t = Peek();
        JinjaExpr node;
        if (t.Kind == JinjaTokenKind.Operator && t.Value is "-" or "+")
        {
            Next();
            node = new UnaryExpr(t.Value, ParseUnaryNoFilter(), t.Line, t.Column);
        }
        else node = ParsePostfix(ParsePrimary());
        return ParseFiltersAndTests(node);
    }

    private JinjaExpr ParseUnaryNoFilter()
    {
        var t = Peek();
        if (t.Kind == JinjaTokenKind.Operator && t.Value is "-" or "+")
        {
            Next();
            return new UnaryExpr(t.Value, ParseUnaryNoFilter(), t.Line, t.Column);
        }
        return ParsePostfix(ParsePrimary());
    }

    private JinjaExpr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case JinjaTokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, t.Line, t.Column),
                    "false" or "False" => new LiteralExpr(false, t.Line, t.Column),
                    "none" or "None" => new LiteralExpr(null, t.Line, t.Column),
                    _ => new NameExpr(t.Value, t.Line, t.Column),
                };
            case JinjaTokenKind.String:
            {
                string s = t.Value;
                while (Peek().Kind == JinjaTokenKind.String) s += Next().Value; // adjacent literals concatenate
                return new LiteralExpr(s, t.Line, t.Column);
            }
            case JinjaTokenKind.Integer:
                if (!long.TryParse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long l)) throw Error(t, $"the integer {t.Value} is too large");
                return new LiteralExpr(l, t.Line, t.Column);
            case JinjaTokenKind.Float:
                return new LiteralExpr(double.Parse(t.Value, NumberStyles.Float, CultureInfo.InvariantCulture), t.Line, t.Column);
            case JinjaTokenKind.Operator when t.Value == "(":
            {
                if (Accept(")")) return new ListExpr([], t.Line, t.Column, IsTuple: true);
                var first = ParseExpression();
                if (Accept(")")) return first;
                var items = new List<JinjaExpr> { first };
                while (Accept(","))
                {
                    if (Peek().IsOperator(")")) break;
                    items.Add(ParseExpression());
                }
                Expect(JinjaTokenKind.Operator, ")");
                return new ListExpr(items, t.Line, t.Column, IsTuple: true);
            }
            case JinjaTokenKind.Operator when t.Value == "[":
            {
                var items = new List<JinjaExpr>();
                while (!Accept("]"))
                {
                    if (items.Count > 0)
                    {
                        Expect(JinjaTokenKind.Operator, ",");
                        if (Accept("]")) break;
                    }
                    items.Add(ParseExpression());
                }
                return new ListExpr(items, t.Line, t.Column);
            }
            case JinjaTokenKind.Operator when t.Value == "{":
            {
                var items = new List<(JinjaExpr, JinjaExpr)>();
                while (!Accept("}"))
                {
                    if (items.Count > 0)
                    {
                        Expect(JinjaTokenKind.Operator, ",");
                        if (Accept("}")) break;
                    }
                    var key = ParseExpression();
                    Expect(JinjaTokenKind.Operator, ":");
                    items.Add((key, ParseExpression()));
                }
                return new DictExpr(items, t.Line, t.Column);
            }
            default:
                throw Error(t, $"expected a value, found {t}");
        }
    }

    private JinjaExpr ParsePostfix(JinjaExpr node)
    {
        while (true)
        {
            var t = Peek();
            if (t.IsOperator("."))
            {
                Next();
                var name = Next();
                if (name.Kind == JinjaTokenKind.Integer) node = new IndexExpr(node, new LiteralExpr(long.Parse(name.Value, CultureInfo.InvariantCulture), name.Line, name.Column), t.Line, t.Column);
                else if (name.Kind == JinjaTokenKind.Name) node = new AttributeExpr(node, name.Value, t.Line, t.Column);
                else throw Error(name, $"expected an attribute name after '.', found {name}");
            }
            else if (t.IsOperator("["))
            {
                Next();
                node = ParseSubscript(node, t);
            }
            else if (t.IsOperator("("))
            {
                Next();
                var (args, kwargs) = ParseArguments();
                node = new CallExpr(node, args, kwargs, node.Line, node.Column); // errors point at what was called
            }
            else return node;
        }
    }

    private JinjaExpr ParseSubscript(JinjaExpr target, JinjaToken open)
    {
        JinjaExpr? start = null, stop = null, step = null;
        if (!Peek().IsOperator(":")) start = ParseExpression();
        if (!Accept(":"))
        {
            Expect(JinjaTokenKind.Operator, "]");
            return new IndexExpr(target, start!, open.Line, open.Column);
        }
        if (!Peek().IsOperator(":") && !Peek().IsOperator("]")) stop = ParseExpression();
        if (Accept(":") && !Peek().IsOperator("]")) step = ParseExpression();
        Expect(JinjaTokenKind.Operator, "]");
        return new SliceExpr(target, start, stop, step, open.Line, open.Column);
    }

    /// <summary>Call arguments after '(' up to and including ')': positional, then name=value.</summary>
    private (List<JinjaExpr>, List<(string, JinjaExpr)>) ParseArguments()
    {
        var args = new List<JinjaExpr>();
        var kwargs = new List<(string, JinjaExpr)>();
        while (!Accept(")"))
        {
            if (args.Count + kwargs.Count > 0)
            {
                Expect(JinjaTokenKind.Operator, ",");
                if (Accept(")")) break;
            }
            if (Peek().Kind == JinjaTokenKind.Name && Peek(1).IsOperator("="))
            {
                string name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error(Peek(), "a positional argument cannot follow a keyword argument");
                args.Add(ParseExpression());
            }
        }
        return (args, kwargs);
    }

    private JinjaExpr ParseFiltersAndTests(JinjaExpr node)
    {
        while (true)
        {
            var t = Peek();
            if (t.IsOperator("|"))
            {
                Next();
                node = ParseFilterCall(node, t);
            }
            else if (t.IsName("is"))
            {
                Next();
                bool negated = AcceptName("not");
                var name = Next();
                if (name.Kind != JinjaTokenKind.Name) throw Error(name, $"expected a test name after 'is', found {name}");
                var args = new List<JinjaExpr>();
                if (Accept("(")) args = ParseArguments().Item1;
                else if (StartsTestArgument(Peek())) args.Add(ParsePostfix(ParsePrimary()));
                node = new TestExpr(node, name.Value, args, negated, t.Line, t.Column);
            }
            else return node;
        }
    }

    /// <summary>"x is divisibleby 3", "x is sameas false": a test may take one argument without parentheses.</summary>
    private static bool StartsTestArgument(JinjaToken t) =>
        t.Kind is JinjaTokenKind.String or JinjaTokenKind.Integer or JinjaTokenKind.Float
        || (t.Kind == JinjaTokenKind.Name && t.Value is not ("and" or "or" or "else" or "if" or "in" or "not" or "is"))
        || t.IsOperator("[") || t.IsOperator("{");

    private FilterExpr ParseFilterCall(JinjaExpr? value, JinjaToken at)
    {
        var name = Expect(JinjaTokenKind.Name, what: "a filter name");
        string filterName = name.Value;
        while (Peek().IsOperator(".") && Peek(1).Kind == JinjaTokenKind.Name) // dotted filter names
        {
            Next();
            filterName += "." + Next().Value;
        }
        List<JinjaExpr> args = [];
        List<(string, JinjaExpr)> kwargs = [];
        if (Accept("(")) (args, kwargs) = ParseArguments();
        return new FilterExpr(value, filterName, args, kwargs, at.Line, at.Column);
    }
}
