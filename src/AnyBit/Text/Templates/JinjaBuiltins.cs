using System.Globalization;
using static AnyBit.Text.Templates.JinjaValues;

namespace AnyBit.Text.Templates;

/// <summary>
/// The globals, filters, tests, operators and methods that the chat templates of Llama 3, Qwen2/3, Mistral,
/// ChatML and their relatives call, with the behaviour of Jinja2 and Python's str/dict/list methods.
/// </summary>
internal static class JinjaBuiltins
{
    public static Dictionary<string, object?> Globals() => new()
    {
        ["range"] = (JinjaCallable)Range,
        ["namespace"] = (JinjaCallable)((args, kwargs) =>
        {
            var ns = new JinjaNamespace();
            foreach (var a in args)
                if (a is Dictionary<string, object?> d) foreach (var (k, v) in d) ns[k] = v;
            foreach (var (k, v) in kwargs) ns[k] = v;
            return ns;
        }),
        ["dict"] = (JinjaCallable)((_, kwargs) => new Dictionary<string, object?>(kwargs)),
        ["raise_exception"] = (JinjaCallable)((args, _) =>
            throw new JinjaException($"the template refused the conversation: {(args.Count > 0 ? ToText(args[0]) : "error")}")),
        ["strftime_now"] = (JinjaCallable)((args, _) => StrFTime(DateTime.Now, args.Count > 0 ? ToText(args[0]) : "%Y-%m-%d")),
    };

    private static object? Range(List<object?> args, Dictionary<string, object?> _)
    {
        long start = 0, stop, step = 1;
        if (args.Count == 1) stop = Int(args[0]);
        else if (args.Count is 2 or 3) { start = Int(args[0]); stop = Int(args[1]); if (args.Count == 3) step = Int(args[2]); }
        else throw new JinjaException("range() takes 1 to 3 arguments");
        if (step == 0) throw new JinjaException("range() step must not be zero");
        var list = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            if (list.Count >= 1_000_000) throw new JinjaException("range() is too long");
            list.Add(i);
        }
        return list;
    }

    private static long Int(object? v) => v switch
    {
        long l => l,
        double d => (long)d,
        bool b => b ? 1 : 0,
        string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) => l,
        _ => throw new JinjaException($"expected an integer, got {TypeName(v)}"),
    };

    /// <summary>The subset of C's strftime that date-stamping templates (Llama 3.1+) use.</summary>
    private static string StrFTime(DateTime t, string format)
    {
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { sb.Append(format[i]); continue; }
            char c = format[++i];
            sb.Append(c switch
            {
                'd' => t.ToString("dd", CultureInfo.InvariantCulture),
                'm' => t.ToString("MM", CultureInfo.InvariantCulture),
                'Y' => t.ToString("yyyy", CultureInfo.InvariantCulture),
                'y' => t.ToString("yy", CultureInfo.InvariantCulture),
                'b' => t.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => t.ToString("MMMM", CultureInfo.InvariantCulture),
                'a' => t.ToString("ddd", CultureInfo.InvariantCulture),
                'A' => t.ToString("dddd", CultureInfo.InvariantCulture),
                'H' => t.ToString("HH", CultureInfo.InvariantCulture),
                'M' => t.ToString("mm", CultureInfo.InvariantCulture),
                'S' => t.ToString("ss", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => "%" + c,
            });
        }
        return sb.ToString();
    }

    public static object? GetAttribute(object? target, string name)
    {
        if (target is Dictionary<string, object?> dict && dict.TryGetValue(name, out var v)) return v;
        return (object?)Method(target, name) ?? JinjaUndefined.Instance;
    }

    public static object? GetItem(object? target, object? index, int position)
    {
        switch (target)
        {
            case Dictionary<string, object?> dict:
                if (index is string key) return dict.TryGetValue(key, out var v) ? v : (object?)Method(target, key) ?? JinjaUndefined.Instance;
                return dict.TryGetValue(ToText(index), out var w) ? w : JinjaUndefined.Instance;
            case List<object?> list when index is long or bool:
            {
                long i = Int(index);
                if (i < 0) i += list.Count;
                return i >= 0 && i < list.Count ? list[(int)i] : JinjaUndefined.Instance;
            }
            case string s when index is long or bool:
            {
                long i = Int(index);
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s[(int)i].ToString() : JinjaUndefined.Instance;
            }
            case null or JinjaUndefined:
                return JinjaUndefined.Instance;
            default:
                throw new JinjaException($"cannot index {TypeName(target)} with {TypeName(index)}", position);
        }
    }

    public static object? Slice(object? target, object? start, object? stop, object? step, int position)
    {
        long st = step is null ? 1 : Int(step);
        if (st == 0) throw new JinjaException("slice step must not be zero", position);
        int n = target switch
        {
            List<object?> l => l.Count,
            string s => s.Length,
            _ => throw new JinjaException($"cannot slice {TypeName(target)}", position),
        };
        // Python's slice.indices().
        long Clamp(object? v, long fallback, long lo, long hi)
        {
            if (v is null) return fallback;
            long x = Int(v);
            if (x < 0) x += n;
            return Math.Clamp(x, lo, hi);
        }
        long a = st > 0 ? Clamp(start, 0, 0, n) : Clamp(start, n - 1, -1, n - 1);
        long b = st > 0 ? Clamp(stop, n, 0, n) : Clamp(stop, -1, -1, n - 1);
        var indices = new List<int>();
        for (long i = a; st > 0 ? i < b : i > b; i += st) indices.Add((int)i);
        return target is string str
            ? string.Concat(indices.Select(i => str[i]))
            : indices.Select(i => ((List<object?>)target!)[i]).ToList();
    }

    public static object? Binary(string op, object? a, object? b, int position)
    {
        switch (op)
        {
            case "==": return JinjaValues.Equals(a, b);
            case "!=": return !JinjaValues.Equals(a, b);
            case "<": return Compare(a, b, position) < 0;
            case ">": return Compare(a, b, position) > 0;
            case "<=": return Compare(a, b, position) <= 0;
            case ">=": return Compare(a, b, position) >= 0;
            case "~": return ToText(a) + ToText(b);
            case "in": return Contains(b, a, position);
            case "+":
                if (a is string sa && b is string sb) return sa + sb;
                if (a is List<object?> la && b is List<object?> lb) return la.Concat(lb).ToList();
                break;
            case "*":
                if (a is string s && b is long times) return times <= 0 ? "" : string.Concat(Enumerable.Repeat(s, (int)Math.Min(times, 1 << 20)));
                break;
        }
        if (!IsNumber(a) || !IsNumber(b))
            throw new JinjaException($"unsupported operand types for {op}: {TypeName(a)} and {TypeName(b)}", position);
        bool integers = a is long or bool && b is long or bool;
        if (integers)
        {
            long x = Int(a), y = Int(b);
            switch (op)
            {
                case "+": return x + y;
                case "-": return x - y;
                case "*": return x * y;
                case "//": return y == 0 ? throw new JinjaException("integer division by zero", position) : (long)Math.Floor((double)x / y);
                case "%": return y == 0 ? throw new JinjaException("modulo by zero", position) : ((x % y) + y) % y;
            }
        }
        double p = ToDouble(a), q = ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw new JinjaException("division by zero", position) : p / q,
            "//" => Math.Floor(p / q),
            "%" => p - q * Math.Floor(p / q),
            "**" => integers && q >= 0 ? (object)(long)Math.Pow(p, q) : Math.Pow(p, q),
            _ => throw new JinjaException($"unknown operator {op}", position),
        };
    }

    private static bool Contains(object? container, object? item, int position) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new JinjaException("'in <string>' needs a string on the left", position),
        List<object?> l => l.Any(x => JinjaValues.Equals(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        null or JinjaUndefined => false,
        _ => throw new JinjaException($"'in' is not supported for {TypeName(container)}", position),
    };

    /// <summary>Python methods of str, dict and list that templates call, bound to their target.</summary>
    private static JinjaCallable? Method(object? target, string name)
    {
        switch (target)
        {
            case string s:
                return name switch
                {
                    "strip" => (a, _) => a.Count > 0 && a[0] is string cs ? s.Trim(cs.ToCharArray()) : s.Trim(),
                    "lstrip" => (a, _) => a.Count > 0 && a[0] is string cs ? s.TrimStart(cs.ToCharArray()) : s.TrimStart(),
                    "rstrip" => (a, _) => a.Count > 0 && a[0] is string cs ? s.TrimEnd(cs.ToCharArray()) : s.TrimEnd(),
                    "upper" => (_, _) => s.ToUpperInvariant(),
                    "lower" => (_, _) => s.ToLowerInvariant(),
                    "title" => (_, _) => Title(s),
                    "capitalize" => (_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(),
                    "startswith" => (a, _) => Affix(a, p => s.StartsWith(p, StringComparison.Ordinal)),
                    "endswith" => (a, _) => Affix(a, p => s.EndsWith(p, StringComparison.Ordinal)),
                    "split" => (a, _) => Split(s, a),
                    "replace" => (a, _) => a.Count >= 2 ? s.Replace(ToText(a[0]), ToText(a[1]), StringComparison.Ordinal) : throw new JinjaException("replace() needs two arguments"),
                    "find" => (a, _) => (long)s.IndexOf(ToText(a.FirstOrDefault()), StringComparison.Ordinal),
                    "count" => (a, _) => (long)CountOccurrences(s, ToText(a.FirstOrDefault())),
                    "join" => (a, _) => string.Join(s, Iterate(a.FirstOrDefault(), 0).Select(ToText)),
                    _ => null,
                };
            case Dictionary<string, object?> d:
                return name switch
                {
                    "items" => (_, _) => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList(),
                    "keys" => (_, _) => d.Keys.Cast<object?>().ToList(),
                    "values" => (_, _) => d.Values.ToList(),
                    "get" => (a, _) => a.Count > 0 && d.TryGetValue(ToText(a[0]), out var v) ? v : a.Count > 1 ? a[1] : null,
                    _ => null,
                };
            case List<object?> l:
                return name switch
                {
                    "append" => (a, _) => { l.Add(a.FirstOrDefault()); return null; },
                    "index" => (a, _) => (long)l.FindIndex(x => JinjaValues.Equals(x, a.FirstOrDefault())),
                    "count" => (a, _) => (long)l.Count(x => JinjaValues.Equals(x, a.FirstOrDefault())),
                    _ => null,
                };
            default:
                return null;
        }
    }

    private static bool Affix(List<object?> args, Func<string, bool> test) => args.FirstOrDefault() switch
    {
        string p => test(p),
        List<object?> options => options.Any(o => test(ToText(o))),
        var other => throw new JinjaException($"startswith/endswith takes a string or a tuple, not {TypeName(other)}"),
    };

    private static List<object?> Split(string s, List<object?> args)
    {
        string? sep = args.Count > 0 && args[0] is string x ? x : null;
        long max = args.Count > 1 ? Int(args[1]) : -1;
        if (sep is null)
            return s.Split((char[]?)null, max < 0 ? int.MaxValue : (int)max + 1, StringSplitOptions.RemoveEmptyEntries).Cast<object?>().ToList();
        if (sep.Length == 0) throw new JinjaException("split() separator is empty");
        return s.Split(sep, max < 0 ? int.MaxValue : (int)max + 1).Cast<object?>().ToList();
    }

    private static int CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        int n = 0;
        for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    private static string Title(string s)
    {
        var chars = s.ToCharArray();
        bool start = true;
        for (int i = 0; i < chars.Length; i++)
        {
            chars[i] = start ? char.ToUpperInvariant(chars[i]) : char.ToLowerInvariant(chars[i]);
            start = !char.IsLetter(chars[i]);
        }
        return new string(chars);
    }

    public static object? ApplyFilter(string name, object? v, List<object?> args, Dictionary<string, object?> kwargs, int position)
    {
        object? Arg(int i, string key, object? fallback) => i < args.Count ? args[i] : kwargs.TryGetValue(key, out var k) ? k : fallback;
        switch (name)
        {
            case "trim": return ToText(v).Trim();
            case "upper": return ToText(v).ToUpperInvariant();
            case "lower": return ToText(v).ToLowerInvariant();
            case "title": return Title(ToText(v));
            case "capitalize": { var s = ToText(v); return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(); }
            case "string": return ToText(v);
            case "safe": return v;
            case "int": return v is string s0 && double.TryParse(s0, CultureInfo.InvariantCulture, out double parsed) ? (long)parsed : v is null or JinjaUndefined ? 0L : Int(v);
            case "float": return v is string s1 && double.TryParse(s1, CultureInfo.InvariantCulture, out double f) ? f : v is null or JinjaUndefined ? 0.0 : ToDouble(v);
            case "abs": return v is long l ? Math.Abs(l) : Math.Abs(ToDouble(v));
            case "round": return Math.Round(ToDouble(v), (int)Int(Arg(0, "precision", 0L)), MidpointRounding.ToEven);
            case "length" or "count":
                return v switch
                {
                    string s => (long)s.Length,
                    System.Collections.ICollection c => (long)c.Count,
                    null or JinjaUndefined => 0L,
                    _ => throw new JinjaException($"{TypeName(v)} has no length", position),
                };
            case "default" or "d":
            {
                bool boolean = Truthy(Arg(1, "boolean", false));
                return v is JinjaUndefined || (boolean && !Truthy(v)) ? Arg(0, "default_value", "") : v;
            }
            case "tojson":
            {
                var indent = Arg(0, "indent", null);
                return ToJson(v, indent is null ? null : (int)Int(indent));
            }
            case "list": return Iterate(v, position).ToList();
            case "first": return Iterate(v, position).FirstOrDefault(JinjaUndefined.Instance);
            case "last": return v is List<object?> { Count: > 0 } ll ? ll[^1] : v is string { Length: > 0 } sl ? sl[^1].ToString() : JinjaUndefined.Instance;
            case "reverse": return v is string sr ? new string(sr.Reverse().ToArray()) : Iterate(v, position).Reverse().ToList();
            case "join":
            {
                string sep = ToText(Arg(0, "d", ""));
                var attr = Arg(1, "attribute", null);
                var items = Iterate(v, position);
                if (attr is not null) items = items.Select(i => GetAttribute(i, ToText(attr)));
                return string.Join(sep, items.Select(ToText));
            }
            case "replace": return ToText(v).Replace(ToText(Arg(0, "old", "")), ToText(Arg(1, "new", "")), StringComparison.Ordinal);
            case "items": return v is Dictionary<string, object?> d ? d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList() : throw new JinjaException("items needs a mapping", position);
            case "dictsort": return v is Dictionary<string, object?> ds
                ? ds.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()
                : throw new JinjaException("dictsort needs a mapping", position);
            case "unique": return Iterate(v, position).Aggregate(new List<object?>(), (acc, x) => { if (!acc.Any(y => JinjaValues.Equals(x, y))) acc.Add(x); return acc; });
            case "sort":
            {
                var attr = Arg(2, "attribute", null);
                var items = Iterate(v, position).ToList();
                items.Sort((x, y) => Compare(attr is null ? x : GetAttribute(x, ToText(attr)), attr is null ? y : GetAttribute(y, ToText(attr)), position));
                if (Truthy(Arg(0, "reverse", false))) items.Reverse();
                return items;
            }
            case "map":
            {
                var attr = kwargs.GetValueOrDefault("attribute");
                if (attr is not null) return Iterate(v, position).Select(i => GetAttribute(i, ToText(attr))).ToList();
                if (args.Count == 0) throw new JinjaException("map needs a filter name or attribute=", position);
                string filter = ToText(args[0]);
                return Iterate(v, position).Select(i => ApplyFilter(filter, i, args.Skip(1).ToList(), [], position)).ToList();
            }
            case "selectattr" or "rejectattr":
            {
                string attr = ToText(Arg(0, "attribute", ""));
                string? test = args.Count > 1 ? ToText(args[1]) : null;
                var testArgs = args.Skip(2).ToList();
                bool keep = name == "selectattr";
                return Iterate(v, position).Where(i =>
                {
                    var value = GetAttribute(i, attr);
                    return (test is null ? Truthy(value) : ApplyTest(test, value, testArgs, position)) == keep;
                }).ToList();
            }
            case "select" or "reject":
            {
                string? test = args.Count > 0 ? ToText(args[0]) : null;
                var testArgs = args.Skip(1).ToList();
                bool keep = name == "select";
                return Iterate(v, position).Where(i => (test is null ? Truthy(i) : ApplyTest(test, i, testArgs, position)) == keep).ToList();
            }
            case "indent":
            {
                int width = (int)Int(Arg(0, "width", 4L));
                bool first = Truthy(Arg(1, "first", false));
                string pad = new(' ', width);
                var lines = ToText(v).Split('\n');
                for (int i = 0; i < lines.Length; i++)
                    if ((i > 0 || first) && lines[i].Length > 0) lines[i] = pad + lines[i];
                return string.Join('\n', lines);
            }
            default:
                throw new JinjaException($"unknown filter '{name}'", position);
        }
    }

    public static bool ApplyTest(string name, object? v, List<object?> args, int position)
    {
        object? arg = args.FirstOrDefault();
        return name switch
        {
            "defined" => v is not JinjaUndefined,
            "undefined" => v is JinjaUndefined,
            "none" => v is null,
            "string" => v is string,
            "number" => v is long or double,
            "integer" => v is long,
            "float" => v is double,
            "boolean" => v is bool,
            "true" => v is true,
            "false" => v is false,
            "mapping" => v is Dictionary<string, object?>,
            "sequence" => v is List<object?> or string or Dictionary<string, object?>,
            "iterable" => v is List<object?> or string or Dictionary<string, object?>,
            "callable" => v is JinjaCallable,
            "odd" => Int(v) % 2 != 0,
            "even" => Int(v) % 2 == 0,
            "divisibleby" => Int(arg) != 0 && Int(v) % Int(arg) == 0,
            "eq" or "equalto" or "sameas" => JinjaValues.Equals(v, arg),
            "ne" => !JinjaValues.Equals(v, arg),
            "lt" or "lessthan" => Compare(v, arg, position) < 0,
            "gt" or "greaterthan" => Compare(v, arg, position) > 0,
            "le" => Compare(v, arg, position) <= 0,
            "ge" => Compare(v, arg, position) >= 0,
            "in" => Contains(arg, v, position),
            "lower" => v is string sl && sl == sl.ToLowerInvariant(),
            "upper" => v is string su && su == su.ToUpperInvariant(),
            _ => throw new JinjaException($"unknown test '{name}'", position),
        };
    }
}
