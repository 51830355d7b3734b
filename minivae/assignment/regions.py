"""The solution regions: finding and checking them, and rendering a file with them replaced.

A region is two comment lines around lines of a function body below its
docstring, the first naming an exercise of the table::

    # BEGIN SOLUTION analytic_kl
    ...the lines a student writes...
    # END SOLUTION

Only comment tokens count: a marker inside a string (like the one above) is no
marker.  :func:`find_regions` reads one file, :func:`scan` a package,
:func:`check_coverage` checks that exercises have their regions, and
:func:`render` swaps regions for other lines (a stub, the solution, a student's).
"""
import ast
import io
import re
import tokenize
from pathlib import Path

from minivae.assignment.exercises import PACKAGE, AssignmentError, exercise_table

_MARKER = re.compile(r"#\s*(BEGIN|END)\s+SOLUTION\b(.*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def find_regions(text, path, table=None):
    """The marked regions of one source file, in order, after checking every marker.

    Parameters
    ----------
    text : str
        The file's source.
    path : str
        Its path relative to the tree ("minivae/nn.py"), for messages and for
        the ``functions`` of the table.
    table : dict, optional
        The exercise table (default :data:`EXERCISES`).

    Returns
    -------
    regions : list of dict
        ``exercise``; ``begin`` and ``end``, the 0-based indices of the marker
        lines; ``indent``, the BEGIN marker's indentation; ``function``, the
        qualified name of the enclosing function ("VAE.forward").

    Raises AssignmentError, naming file and line, for: a marker that is not alone
    on its line, BEGIN without a known exercise name, nested regions, END without
    BEGIN or BEGIN without END, an END indented unlike its BEGIN, an empty region,
    a region not inside a function body below its docstring, or in a function the
    table does not list for that exercise.
    """
    table = exercise_table(table)
    lines = text.splitlines(keepends=True)
    regions, current = [], None
    for row, column, comment in _comments(text, path):
        match = _MARKER.match(comment)
        if not match:
            continue
        where = f"{path}:{row}"
        kind, rest = match.group(1), match.group(2).strip()
        line = lines[row - 1]
        if line[:column].strip():
            raise AssignmentError(f"{where}: a solution marker must be on a line of its own, "
                                  f"got {line.strip()!r}")
        indent = line[:column]
        if kind == "BEGIN":
            if current is not None:
                raise AssignmentError(
                    f"{where}: BEGIN SOLUTION inside the region of {current['exercise']!r} opened "
                    f"at line {current['begin'] + 1}; regions cannot nest (close it with END SOLUTION)")
            if not _NAME.fullmatch(rest):
                raise AssignmentError(f"{where}: expected '# BEGIN SOLUTION <exercise-name>', "
                                      f"got {comment!r}")
            if rest not in table:
                raise AssignmentError(f"{where}: unknown exercise {rest!r}; the exercise table has "
                                      f"{', '.join(sorted(table))}")
            current = {"exercise": rest, "begin": row - 1, "indent": indent}
        else:
            if rest:
                raise AssignmentError(f"{where}: expected '# END SOLUTION' alone, got {comment!r}")
            if current is None:
                raise AssignmentError(f"{where}: END SOLUTION without a BEGIN SOLUTION before it")
            if indent != current["indent"]:
                raise AssignmentError(f"{where}: END SOLUTION must be indented like its BEGIN "
                                      f"SOLUTION at line {current['begin'] + 1}")
            current["end"] = row - 1
            regions.append(current)
            current = None
    if current is not None:
        raise AssignmentError(f"{path}:{current['begin'] + 1}: BEGIN SOLUTION "
                              f"{current['exercise']} has no END SOLUTION")
    if regions:
        _check_placement(text, lines, path, regions, table)
    return regions


def _comments(text, path):
    """(row, column, text) of every comment token: markers inside strings do not count."""
    try:
        return [(tok.start[0], tok.start[1], tok.string)
                for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                if tok.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError) as error:
        raise AssignmentError(f"{path}: cannot read its comments ({error})") from None


def _functions(tree):
    """(qualified name, node) of every function and method, outermost first."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child))
                visit(child, name + ".")

    visit(tree, "")
    return found


def _check_placement(text, lines, path, regions, table):
    """Every region must lie in one function body, below its docstring, in a function it names."""
    try:
        functions = _functions(ast.parse(text, filename=path))
    except SyntaxError as error:
        raise AssignmentError(f"{path}:{error.lineno}: not valid Python ({error.msg})") from None
    for region in regions:
        where = f"{path}:{region['begin'] + 1}"
        code_rows = [i + 1 for i in range(region["begin"] + 1, region["end"])
                     if lines[i].strip() and not lines[i].lstrip().startswith("#")]
        if not code_rows:
            raise AssignmentError(f"{where}: the region of {region['exercise']!r} is empty")
        first, last = code_rows[0], code_rows[-1]
        first_indent = lines[first - 1][:len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        if first_indent != region["indent"]:
            raise AssignmentError(f"{where}: BEGIN SOLUTION must be indented like the first line it "
                                  f"encloses (line {first})")
        enclosing = [(name, node) for name, node in functions
                     if node.body[0].lineno <= first and last <= node.end_lineno]
        if not enclosing:
            raise AssignmentError(
                f"{where}: the region of {region['exercise']!r} is not inside a function body; "
                "a stub there would raise when the module is imported")
        name, node = enclosing[-1]                       # the innermost function
        body = node.body[0]
        if (isinstance(body, ast.Expr) and isinstance(body.value, ast.Constant)
                and isinstance(body.value.value, str) and first <= body.end_lineno):
            raise AssignmentError(f"{where}: the region of {region['exercise']!r} must start after "
                                  f"the docstring of {name} (the stub keeps the docstring)")
        listed = table[region["exercise"]].get("functions", [])
        if f"{path}::{name}" not in listed:
            raise AssignmentError(
                f"{where}: the region of {region['exercise']!r} lies in {path}::{name}, which the "
                f"exercise table does not list for it (it lists {', '.join(listed) or 'nothing'})")
        region["function"] = name


def scan(root, package=PACKAGE, table=None):
    """Every marked region of the package under ``root``: {relative path: (text, regions)}.

    Only files with at least one region are returned; all are checked.
    """
    root = Path(root)
    found = {}
    for file in sorted((root / package).rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        rel = file.relative_to(root).as_posix()
        text = file.read_text(encoding="utf-8")
        regions = find_regions(text, rel, table)
        if regions:
            found[rel] = (text, regions)
    return found


def check_coverage(scanned, names, table=None):
    """Raise AssignmentError unless every function listed for each exercise in ``names`` has a region."""
    table = exercise_table(table)
    present = {(rel, region["function"], region["exercise"])
               for rel, (_, regions) in scanned.items() for region in regions}
    missing = []
    for name in names:
        without = [f for f in table[name]["functions"] if (*f.split("::"), name) not in present]
        if without:
            missing.append(f"{name} (in {', '.join(without)})")
    if missing:
        raise AssignmentError("no marked region (# BEGIN SOLUTION <name> ... # END SOLUTION) for "
                              "exercise " + "; ".join(missing))


def render(text, regions, replace):
    """``text`` with every region's lines, markers included, swapped for ``replace(region, body)``.

    ``body`` is the list of the region's lines between its markers (with line
    endings); ``replace`` returns the lines to put in place of the whole region.
    """
    lines = text.splitlines(keepends=True)
    out, pos = [], 0
    for region in regions:
        out += lines[pos:region["begin"]]
        out += replace(region, lines[region["begin"] + 1:region["end"]])
        pos = region["end"] + 1
    out += lines[pos:]
    return "".join(out)

