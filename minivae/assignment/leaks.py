"""The leak scan: does any file of a student edition contain code of a solution it withholds?

Two scans, both against every withheld or assigned region of the solution:

* **normalised code** (:func:`normal_forms`): the region is parsed and every name,
  argument name and constant is abstracted ("_", and the constant's type), so a
  renamed, reformatted or re-commented copy has the same form.  Its fingerprints
  are the whole region (its statements in order), every run of two or three of
  its statements (at least MIN_RUN_NODES nodes), every statement and every
  expression of at least MIN_NODES nodes.  Every Python source of the edition (modules, the code cells of
  notebooks, the fenced ``python`` blocks of Markdown) is cut the same way; a
  shared fingerprint is a leak.  Attribute and keyword names (``np.expm1``,
  ``axis=``) are kept: they are the library's names, not the student's.
* **lines**: every line of a region (whitespace removed, a trailing comment
  dropped; lines under MIN_CHARS characters and compound-statement headers
  skipped) is searched for in every text file, so an answer quoted in prose or
  in a JSON string is found too.

The same normal form is what :mod:`minivae.assignment.similarity` compares
between students.
"""
import ast
import json
import re
import textwrap
from pathlib import Path

MIN_CHARS = 20
MIN_NODES = 14                # a statement or expression smaller than this is no answer (x = a + b)
MIN_RUN_NODES = 28            # nor a run of statements smaller than this (two calls of given functions)
_SPACE = re.compile(r"\s+")
_HEADER = re.compile(r"^\s*(if|elif|else|for|while|try|except|with)\b[^#]*:\s*(#.*)?$")
_FENCE = re.compile(r"^```(?:python|py)\s*\n(.*?)^```", re.M | re.S)
_CONTEXT = (ast.Load, ast.Store, ast.Del)


def normalise(line):
    """A code line without its comment and with no whitespace at all (so spacing cannot hide it)."""
    code = line.split("#", 1)[0] if "#" in line and not re.search(r"[\"'].*#", line) else line
    return _SPACE.sub("", code)


# ---------------------------------------------------------------- normalised code

class _Abstract(ast.NodeTransformer):
    """Names, argument names, function names and constants abstracted; docstrings dropped."""

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id="_", ctx=ast.Load()), node)

    def visit_arg(self, node):
        return ast.copy_location(ast.arg(arg="_"), node)

    def visit_Constant(self, node):
        return ast.copy_location(ast.Constant(value=type(node.value).__name__), node)

    def visit_UnaryOp(self, node):     # -1 is a constant too
        if isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant):
            return self.visit_Constant(node.operand)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node):
        node.name = "_"
        node.decorator_list, node.returns = [], None
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Expr(self, node):        # a bare string (a comment in quotes) is no code
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return self.generic_visit(node)


def _forms_and_sizes(nodes):
    """{id(node): (form, size)} of every node under ``nodes`` (a list of them, or one).

    A node's form is the text of ``ast.dump(node, annotate_fields=False)`` as Python 3.11
    writes it (a field left at its default None is skipped, and the fields after it are
    named); its size counts its nodes, the Load/Store/Del markers left out.  Each form is
    built from its children's, so a tree costs one pass: dumping and walking every node
    on its own would write each subtree again for every node above it.
    """
    table = {}

    def visit(value):
        if isinstance(value, list):
            parts = [visit(item) for item in value]
            return "[" + ", ".join(form for form, _ in parts) + "]", sum(size for _, size in parts)
        if not isinstance(value, ast.AST):
            return repr(value), 0
        if id(value) in table:
            return table[id(value)]
        args, size, named = [], int(not isinstance(value, _CONTEXT)), False
        for name in value._fields:
            field = getattr(value, name, None)
            if field is None and getattr(type(value), name, ...) is None:
                named = True
                continue
            form, field_size = visit(field)
            args.append(f"{name}={form}" if named else form)
            size += field_size
        table[id(value)] = result = (f"{type(value).__name__}({', '.join(args)})", size)
        return result

    visit(nodes)
    return table


def _form(node):
    """The normal form of one node (see :func:`_forms_and_sizes`)."""
    return _forms_and_sizes(node)[id(node)][0]


def parse_code(text):
    """The statements of ``text`` (dedented), abstracted; [] if it is not Python."""
    try:
        tree = ast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    try:
        return _Abstract().visit(tree).body
    except RecursionError:
        return []


def _bodies(statements):
    """Every list of statements in ``statements``, nested blocks included."""
    yield statements
    for statement in statements:
        for node in ast.walk(statement):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    yield block
            for handler in getattr(node, "handlers", ()):
                yield handler.body


def normal_forms(statements, windows=(2, 3), min_nodes=MIN_NODES, min_run=MIN_RUN_NODES):
    """{fingerprint: size} of abstracted ``statements``: runs of ``windows`` statements (at least
    MIN_RUN_NODES nodes), and every statement and expression of at least MIN_NODES nodes."""
    return _normal_forms(statements, _forms_and_sizes(statements), windows, min_nodes, min_run)


def _normal_forms(statements, table, windows=(2, 3), min_nodes=MIN_NODES, min_run=MIN_RUN_NODES):
    """normal_forms, with the forms and sizes of ``statements``' nodes already in ``table``."""
    forms = {}
    for block in _bodies(statements):
        dumps = [table[id(s)] for s in block]
        for n in windows:
            for i in range(len(dumps) - n + 1):
                size = sum(s for _, s in dumps[i:i + n])
                if size >= min_run:
                    forms["\n".join(d for d, _ in dumps[i:i + n])] = size
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, (ast.stmt, ast.expr)) and not isinstance(node, ast.FunctionDef):
                form, size = table[id(node)]
                if size >= min_nodes:
                    forms[form] = size
    return forms


def region_code(text, region):
    """The code of a region (the lines between its markers) as one string."""
    return "".join(text.splitlines(keepends=True)[region["begin"] + 1:region["end"]])


def solution_forms(scanned, names):
    """({fingerprint: (exercise, file:line)}, {length: {whole-region form: (exercise, file:line)}})."""
    forms, wholes = {}, {}
    for rel, (text, regions) in scanned.items():
        for region in regions:
            if region["exercise"] not in names:
                continue
            where = (region["exercise"], f"{rel}:{region['begin'] + 2}")
            statements = parse_code(region_code(text, region))
            if not statements:
                continue
            table = _forms_and_sizes(statements)
            wholes.setdefault(len(statements), {}).setdefault("\n".join(table[id(s)][0] for s in statements), where)
            for form in _normal_forms(statements, table):
                forms.setdefault(form, where)
    return forms, wholes


def python_sources(path, text):
    """The Python code of a file of the edition: a module, a notebook's code cells, Markdown's blocks."""
    if path.suffix == ".py":
        return [text]
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
            return ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                    for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]
        except (ValueError, AttributeError):
            return []
    if path.suffix in (".md", ".rst", ".txt"):
        return [block for block in _FENCE.findall(text)]
    return []


def code_leaks(text_sources, forms, wholes):
    """[(exercise, solution file:line)] of every fingerprint of ``forms`` or region of ``wholes``
    found in the Python ``text_sources``."""
    found = []
    for source in text_sources:
        statements = parse_code(source)
        if not statements:
            continue
        table = _forms_and_sizes(statements)
        mine = _normal_forms(statements, table)
        found += [forms[f] for f in mine if f in forms]
        for block in _bodies(statements):
            dumps = [table[id(s)][0] for s in block]
            for n, regions in wholes.items():
                found += [regions[w] for w in ("\n".join(dumps[i:i + n]) for i in range(len(dumps) - n + 1))
                          if w in regions]
    return found


# ---------------------------------------------------------------- lines

def solution_lines(scanned, names):
    """{normalised line: (exercise, file, line number)} of the regions of ``names``."""
    found = {}
    for rel, (text, regions) in scanned.items():
        lines = text.splitlines()
        for region in regions:
            if region["exercise"] not in names:
                continue
            for i in range(region["begin"] + 1, region["end"]):
                key = normalise(lines[i])
                if len(key) >= MIN_CHARS and not _HEADER.match(lines[i]):
                    found.setdefault(key, (region["exercise"], rel, i + 1))
    return found


def scan_for_leaks(folder, scanned, names):
    """[(edition file, line number or 0, exercise, solution file:line)] of every leak.

    A line found verbatim gives its line number; code found in normalised form gives 0.
    """
    wanted, leaks = solution_lines(scanned, names), []
    forms, wholes = solution_forms(scanned, names)
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue                                   # binary data (e.g. the MNIST subset)
        rel = path.relative_to(folder).as_posix()
        for number, line in enumerate(text.splitlines(), 1):
            hit = wanted.get(normalise(line))
            if hit is None:       # a notebook's JSON string or a docstring: the line inside quotes
                inner = line.strip().strip('",').replace("\\n", "").replace('\\"', '"')
                hit = wanted.get(normalise(inner))
            if hit is not None:
                leaks.append((rel, number, hit[0], f"{hit[1]}:{hit[2]}"))
        for exercise, where in dict.fromkeys(code_leaks(python_sources(path, text), forms, wholes)):
            leaks.append((rel, 0, exercise, where))
    return leaks
