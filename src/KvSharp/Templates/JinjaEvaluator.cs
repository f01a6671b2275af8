namespace KvSharp.Templates;

/// <summary>
/// Renders a parsed template: executes statements into a <see cref="MarkedStringBuilder"/> and evaluates expressions
/// with Jinja2's (Python's) semantics. Errors become a <see cref="TemplateException"/> at the innermost node that failed.
/// </summary>
internal sealed class JinjaEvaluator(string templateName)
{
    private enum Flow { Normal, Break, Continue }

    /// <summary>Guards against a template that recurses through macros without end.</summary>
    private const int MaxCallDepth = 256;

    private int _callDepth;

    public string TemplateName { get; } = templateName;

    public MarkedString Render(IReadOnlyList<JinjaNode> body, JinjaScope scope)
    {
        var output = new MarkedStringBuilder();
        var flow = Execute(body, scope, output);
        if (flow != Flow.Normal) throw new TemplateException(TemplateName, 1, 1, $"'{{% {flow.ToString().ToLowerInvariant()} %}}' outside a for loop");
        return output.ToMarked();
    }

    private Flow Execute(IReadOnlyList<JinjaNode> nodes, JinjaScope scope, MarkedStringBuilder output)
    {
        foreach (var node in nodes)
        {
            var flow = Execute(node, scope, output);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Execute(JinjaNode node, JinjaScope scope, MarkedStringBuilder output)
    {
        switch (node)
        {
            case TextNode t:
                output.Append(t.Text);
                return Flow.Normal;
            case OutputNode o:
                output.Append(JinjaValues.ToText(Evaluate(o.Value, scope)));
                return Flow.Normal;
            case IfNode i:
                foreach (var (test, body) in i.Branches)
                    if (JinjaValues.IsTrue(Evaluate(test, scope))) return Execute(body, scope, output);
                return i.Else != null ? Execute(i.Else, scope, output) : Flow.Normal;
            case ForNode f:
                ExecuteFor(f, scope, output);
                return Flow.Normal;
            case SetNode s:
                Located(s, () => Assign(s, scope, Evaluate(s.Value, scope)));
                return Flow.Normal;
            case SetBlockNode sb:
            {
                var body = new MarkedStringBuilder();
                Execute(sb.Body, scope, body);
                scope.Set(sb.Target, body.ToMarked());
                return Flow.Normal;
            }
            case MacroNode m:
                scope.Set(m.Name, DefineMacro(m, scope));
                return Flow.Normal;
            case CallBlockNode cb:
            {
                // caller() renders the body where the call stands, its parameters bound to what the macro passes.
                var caller = new JinjaCallable("caller", args =>
                {
                    var inner = new JinjaScope(scope);
                    for (int i = 0; i < cb.CallerParameters.Count; i++)
                        inner.Set(cb.CallerParameters[i], i < args.Positional.Count ? args.Positional[i] : new JinjaUndefined($"'{cb.CallerParameters[i]}' is undefined"));
                    var body = new MarkedStringBuilder();
                    Execute(cb.Body, inner, body);
                    return body.ToMarked();
                });
                output.Append(JinjaValues.ToText(Call(cb.Call, scope, caller)));
                return Flow.Normal;
            }
            case FilterBlockNode fb:
            {
                var body = new MarkedStringBuilder();
                Execute(fb.Body, scope, body);
                output.Append(JinjaValues.ToText(ApplyFilter(fb.Filter, body.ToMarked(), scope)));
                return Flow.Normal;
            }
            case BreakNode:
                return Flow.Break;
            case ContinueNode:
                return Flow.Continue;
            default:
                throw new TemplateException(TemplateName, node.Line, node.Column, $"cannot execute {node.GetType().Name}");
        }
    }

    private void Assign(SetNode s, JinjaScope scope, object? value)
    {
        if (s.Attribute != null)
        {
            if (!scope.TryGet(s.Targets[0], out var target) || target is not JinjaNamespace ns)
                throw new JinjaError($"cannot assign attribute '{s.Attribute}' of '{s.Targets[0]}': only a namespace() takes attributes");
            ns[s.Attribute] = value;
            return;
        }
        Bind(s.Targets, value, scope);
    }

    /// <summary>Binds one name, or unpacks a sequence into several ("for key, value in ...", "set a, b = ...").</summary>
    private static void Bind(IReadOnlyList<string> names, object? value, JinjaScope scope)
    {
        if (names.Count == 1)
        {
            scope.Set(names[0], value);
            return;
        }
        var items = JinjaIteration.Items(value);
        if (items.Count != names.Count)
            throw new JinjaError($"cannot unpack {items.Count} value{(items.Count == 1 ? "" : "s")} into {names.Count} names ({string.Join(", ", names)})");
        for (int i = 0; i < names.Count; i++) scope.Set(names[i], items[i]);
    }

    private void ExecuteFor(ForNode f, JinjaScope scope, MarkedStringBuilder output)
    {
        var source = Evaluate(f.Iterable, scope);
        var all = Located(f.Iterable, () => JinjaIteration.Items(source));
        List<object?> items = all;
        if (f.Filter != null)
        {
            items = [];
            foreach (var item in all)
            {
                var filterScope = new JinjaScope(scope);
                Located(f, () => Bind(f.Targets, item, filterScope));
                if (JinjaValues.IsTrue(Evaluate(f.Filter, filterScope))) items.Add(item);
            }
        }
        if (items.Count == 0)
        {
            if (f.Else != null) Execute(f.Else, scope, output);
            return;
        }
        for (int i = 0; i < items.Count; i++)
        {
            var iteration = new JinjaScope(scope);
            Located(f, () => Bind(f.Targets, items[i], iteration));
            iteration.Set("loop", LoopInfo(items, i));
            if (Execute(f.Body, iteration, output) == Flow.Break) break;
        }
    }

    private static JinjaDict LoopInfo(List<object?> items, int i) => new()
    {
        ["index"] = (long)(i + 1),
        ["index0"] = (long)i,
        ["revindex"] = (long)(items.Count - i),
        ["revindex0"] = (long)(items.Count - i - 1),
        ["first"] = i == 0,
        ["last"] = i == items.Count - 1,
        ["length"] = (long)items.Count,
        ["previtem"] = i > 0 ? items[i - 1] : new JinjaUndefined("there is no previous item"),
        ["nextitem"] = i < items.Count - 1 ? items[i + 1] : new JinjaUndefined("there is no next item"),
        ["depth"] = 1L,
        ["depth0"] = 0L,
        ["cycle"] = new JinjaCallable("loop.cycle", a => a.Positional.Count == 0 ? throw new JinjaError("loop.cycle() needs at least one value") : a.Positional[i % a.Positional.Count]),
    };

    /// <summary>How a {% call %} block hands its caller() to the macro (a name no template can write as a keyword).</summary>
    private const string CallerArgument = " caller";

    private JinjaCallable DefineMacro(MacroNode m, JinjaScope definedIn) => new(m.Name, args =>
    {
        if (args.Positional.Count > m.Parameters.Count)
            throw new JinjaError($"macro '{m.Name}' takes {m.Parameters.Count} argument{(m.Parameters.Count == 1 ? "" : "s")}, got {args.Positional.Count}");
        foreach (var name in args.Named.Keys)
            if (name != CallerArgument && !m.Parameters.Any(p => p.Name == name)) throw new JinjaError($"macro '{m.Name}' has no parameter '{name}'");
        _callDepth++;
        try
        {
            if (_callDepth > MaxCallDepth) throw new JinjaError($"macro '{m.Name}' recursed deeper than {MaxCallDepth} calls");
            var scope = new JinjaScope(definedIn);
            for (int i = 0; i < m.Parameters.Count; i++)
            {
                var (name, fallback) = m.Parameters[i];
                object? value = i < args.Positional.Count ? args.Positional[i]
                    : args.Named.TryGetValue(name, out var v) ? v
                    : fallback != null ? Evaluate(fallback, scope)
                    : new JinjaUndefined($"'{name}' is undefined (macro '{m.Name}' was called without it)");
                scope.Set(name, value);
            }
            if (args.Named.TryGetValue(CallerArgument, out var caller)) scope.Set("caller", caller);
            var output = new MarkedStringBuilder();
            Execute(m.Body, scope, output);
            return output.ToMarked();
        }
        finally
        {
            _callDepth--;
        }
    });

    public object? Evaluate(JinjaExpr expr, JinjaScope scope)
    {
        try
        {
            return EvaluateCore(expr, scope);
        }
        catch (JinjaError e)
        {
            throw new TemplateException(TemplateName, expr.Line, expr.Column, e.Message) { RaisedByTemplate = e.RaisedByTemplate };
        }
    }

    private T Located<T>(JinjaNode node, Func<T> action)
    {
        try
        {
            return action();
        }
        catch (JinjaError e)
        {
            throw new TemplateException(TemplateName, node.Line, node.Column, e.Message) { RaisedByTemplate = e.RaisedByTemplate };
        }
    }

    private void Located(JinjaNode node, Action action) => Located(node, () => { action(); return 0; });

    private object? EvaluateCore(JinjaExpr expr, JinjaScope scope)
    {
        switch (expr)
        {
            case LiteralExpr l:
                return l.Value is string s ? MarkedString.Plain(s) : l.Value;
            case NameExpr n:
                return scope.TryGet(n.Name, out var value) ? value : new JinjaUndefined($"'{n.Name}' is undefined");
            case ListExpr list:
            {
                var result = list.IsTuple ? new JinjaTuple() : new List<object?>(list.Items.Count);
                foreach (var item in list.Items) result.Add(Evaluate(item, scope));
                return result;
            }
            case DictExpr dict:
            {
                var result = new JinjaDict();
                foreach (var (k, v) in dict.Items) result.SetKey(Evaluate(k, scope), Evaluate(v, scope));
                return result;
            }
            case AttributeExpr a:
                return JinjaAccess.Attribute(Evaluate(a.Target, scope), a.Name);
            case IndexExpr i:
                return JinjaAccess.Index(Evaluate(i.Target, scope), Evaluate(i.Index, scope));
            case SliceExpr slice:
                return JinjaAccess.Slice(Evaluate(slice.Target, scope), Optional(slice.Start, scope), Optional(slice.Stop, scope), Optional(slice.Step, scope));
            case CallExpr c:
                return Call(c, scope);
            case FilterExpr f:
                return ApplyFilter(f, Evaluate(f.Value!, scope), scope);
            case TestExpr t:
            {
                var subject = Evaluate(t.Value, scope);
                var args = t.Args.Select(a => Evaluate(a, scope)).ToList();
                return JinjaTests.Run(t.Name, subject, args) != t.Negated;
            }
            case UnaryExpr u:
            {
                var operand = Evaluate(u.Operand, scope);
                return u.Operator switch
                {
                    "not" => !JinjaValues.IsTrue(operand),
                    // Arms cast to object: a switch over long and double arms would otherwise make every result a double.
                    "-" => operand switch
                    {
                        long l => (object)(-l),
                        double d => -d,
                        bool b => b ? -1L : 0L,
                        _ => throw new JinjaError($"cannot negate {JinjaValues.TypeName(operand)}"),
                    },
                    _ => !JinjaValues.IsNumber(operand) ? throw new JinjaError($"unary + needs a number, got {JinjaValues.TypeName(operand)}")
                        : operand is bool b2 ? (b2 ? 1L : 0L) : operand,
                };
            }
            case BinaryExpr b:
                return Binary(b, scope);
            case ConditionalExpr c:
                return JinjaValues.IsTrue(Evaluate(c.Test, scope)) ? Evaluate(c.Then, scope)
                    : c.Else != null ? Evaluate(c.Else, scope) : new JinjaUndefined("the conditional expression had no else");
            default:
                throw new JinjaError($"cannot evaluate {expr.GetType().Name}");
        }
    }

    private object? Optional(JinjaExpr? e, JinjaScope scope) => e == null ? null : Evaluate(e, scope);

    private object? Call(CallExpr c, JinjaScope scope, JinjaCallable? caller = null)
    {
        var callee = Evaluate(c.Callee, scope);
        var positional = c.Args.Select(a => Evaluate(a, scope)).ToList();
        var named = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in c.Kwargs) named[name] = Evaluate(value, scope);
        if (caller != null) named[CallerArgument] = caller;
        return callee switch
        {
            JinjaCallable f => f.Invoke(new JinjaArguments(f.Name, positional, named)),
            JinjaUndefined u => throw new JinjaError($"{u.Description} and cannot be called"),
            _ => throw new JinjaError($"{JinjaValues.TypeName(callee)} cannot be called"),
        };
    }

    private object? ApplyFilter(FilterExpr f, object? value, JinjaScope scope)
    {
        var positional = f.Args.Select(a => Evaluate(a, scope)).ToList();
        var named = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, v) in f.Kwargs) named[name] = Evaluate(v, scope);
        return Located(f, () => JinjaFilters.Apply(f.Name, value, new JinjaArguments(f.Name, positional, named)));
    }

    private object? Binary(BinaryExpr b, JinjaScope scope)
    {
        var left = Evaluate(b.Left, scope);
        switch (b.Operator)
        {
            case "and": return JinjaValues.IsTrue(left) ? Evaluate(b.Right, scope) : left;
            case "or": return JinjaValues.IsTrue(left) ? left : Evaluate(b.Right, scope);
        }
        var right = Evaluate(b.Right, scope);
        return b.Operator switch
        {
            "==" => JinjaValues.AreEqual(left, right),
            "!=" => !JinjaValues.AreEqual(left, right),
            "<" => JinjaValues.Compare(left, right) < 0,
            ">" => JinjaValues.Compare(left, right) > 0,
            "<=" => JinjaValues.Compare(left, right) <= 0,
            ">=" => JinjaValues.Compare(left, right) >= 0,
            "in" => JinjaAccess.Contains(right, left),
            "not in" => !JinjaAccess.Contains(right, left),
            "~" => MarkedString.Concat(JinjaValues.ToText(left), JinjaValues.ToText(right)),
            _ => JinjaArithmetic.Apply(b.Operator, left, right),
        };
    }
}
