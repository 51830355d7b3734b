"""Automatic mutants of the solution regions: small wrong versions a grader's checks must catch.

Each mutant changes one node of the abstract syntax tree inside one marked region
(minivae.assignment.regions), the way students get formulas wrong:

* sign: ``a + b`` <-> ``a - b``, ``-a`` -> ``a``;
* operator: ``*`` <-> ``/``, ``**`` -> ``*``, a comparison turned round (``>`` <-> ``<``,
  ``>`` <-> ``>=``), ``np.maximum`` <-> ``np.minimum``;
* constant: a number ``c`` -> ``2 c`` (or 1 for 0), an integer ``n`` -> ``n + 1``;
* operands swapped: ``a - b`` -> ``b - a``, ``a / b``, ``a @ b`` likewise;
* axis: ``axis=k`` -> another axis, ``axis=k`` dropped;
* a term dropped: ``a + b`` / ``a - b`` -> ``a`` and -> ``b``; ``a * b`` -> ``a`` and -> ``b``.

:func:`mutants` yields (line, what, source): the whole file's source with the
one change (unparsed from the tree, so formatting differs; only its behaviour matters).
"""
import ast
import copy

_SWAP_OPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult}
_SWAP_CMP = {ast.Gt: [ast.Lt, ast.GtE], ast.Lt: [ast.Gt, ast.LtE], ast.GtE: [ast.Gt], ast.LtE: [ast.Lt]}
_SWAP_CALLS = {"maximum": "minimum", "minimum": "maximum", "logaddexp": "add"}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@",
           ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<="}


def _changes(node):
    """[(what, function(node) -> replacement node)] for one node of a region."""
    out = []
    if isinstance(node, ast.BinOp):
        op = type(node.op)
        if op in _SWAP_OPS:
            new = _SWAP_OPS[op]
            out.append((f"'{_SYMBOL[op]}' -> '{_SYMBOL[new]}'",
                        lambda n, new=new: ast.BinOp(n.left, new(), n.right)))
        if op in (ast.Sub, ast.Div, ast.MatMult, ast.Pow):
            out.append((f"operands of '{_SYMBOL[op]}' swapped", lambda n: ast.BinOp(n.right, n.op, n.left)))
        if op in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            out.append((f"'{_SYMBOL[op]}' term dropped (left kept)", lambda n: n.left))
            if op in (ast.Add, ast.Mult):
                out.append((f"'{_SYMBOL[op]}' term dropped (right kept)", lambda n: n.right))
            else:
                out.append((f"'{_SYMBOL[op]}' term dropped (right kept, sign kept)",
                            lambda n: ast.UnaryOp(ast.USub(), n.right) if isinstance(n.op, ast.Sub) else
                            ast.BinOp(ast.Constant(1.0), ast.Div(), n.right)))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        out.append(("sign dropped ('-a' -> 'a')", lambda n: n.operand))
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _SWAP_CMP:
        for new in _SWAP_CMP[type(node.ops[0])]:
            out.append((f"'{_SYMBOL[type(node.ops[0])]}' -> '{_SYMBOL[new]}'",
                        lambda n, new=new: ast.Compare(n.left, [new()], n.comparators)))
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = node.value
        if type(value) is int:
            out.append((f"constant {value} -> {value + 1}", lambda n: ast.Constant(n.value + 1)))
        else:
            new = 2 * value if value else 1.0
            out.append((f"constant {value!r} -> {new!r}", lambda n, new=new: ast.Constant(new)))
    elif isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in _SWAP_CALLS and isinstance(func, ast.Attribute) and len(node.args) == 2:
            new = _SWAP_CALLS[name]
            out.append((f"{name} -> {new}", lambda n, new=new: ast.Call(
                ast.Attribute(n.func.value, new, ast.Load()), n.args, n.keywords)))
        for i, kw in enumerate(node.keywords):
            if kw.arg == "axis":
                out.append((f"axis={ast.unparse(kw.value)} dropped",
                            lambda n, i=i: ast.Call(n.func, n.args, n.keywords[:i] + n.keywords[i + 1:])))
                other = _other_axis(kw.value)
                if other is not None:
                    out.append((f"axis={ast.unparse(kw.value)} -> axis={other}", lambda n, i=i, other=other: ast.Call(
                        n.func, n.args, [*n.keywords[:i], ast.keyword("axis", ast.Constant(other)),
                                         *n.keywords[i + 1:]])))
    return out


def _other_axis(value):
    """Another axis for ``axis=value``: 0 <-> -1 (and 1 -> 0), None if not a plain number."""
    if isinstance(value, ast.UnaryOp) and isinstance(value.operand, ast.Constant):
        return 0
    if isinstance(value, ast.Constant) and isinstance(value.value, int):
        return -1 if value.value == 0 else 0
    return None


class _Replace(ast.NodeTransformer):
    """Replace the ``index``-th node (in ast.walk order) of the tree by ``change(node)``."""

    def __init__(self, target, change):
        self.target, self.change = target, change

    def generic_visit(self, node):
        if node is self.target:
            return ast.copy_location(self.change(node), node)
        return super().generic_visit(node)


def mutants(text, line_ranges):
    """(line, what, source) for each mutant of the statements of ``text`` within ``line_ranges``.

    line_ranges: [(first, last)] 1-based inclusive line numbers (a region's body).
    A node is mutated if it starts inside a range; docstrings and the region's
    ``raise`` lines are left alone.
    """
    tree = ast.parse(text)
    nodes = [n for n in ast.walk(tree) if hasattr(n, "lineno")
             and any(a <= n.lineno <= b for a, b in line_ranges)
             and not (isinstance(n, ast.Constant) and isinstance(n.value, str))]
    for position, node in enumerate(nodes):
        for what, change in _changes(node):
            copy_tree = copy.deepcopy(tree)
            target = [n for n in ast.walk(copy_tree) if hasattr(n, "lineno")
                      and any(a <= n.lineno <= b for a, b in line_ranges)
                      and not (isinstance(n, ast.Constant) and isinstance(n.value, str))][position]
            try:
                mutated = ast.fix_missing_locations(_Replace(target, change).visit(copy_tree))
                source = ast.unparse(mutated)
            except (AttributeError, TypeError, ValueError):
                continue
            yield node.lineno, what, source
