"""The student edition: a copy of the source tree with the chosen exercises' regions stubbed.

:func:`make_assignment` copies the tree (:func:`copy_tree`), replaces each region
of the chosen exercises by its two markers around a stub that raises
``NotImplementedError("Exercise <name>: <hint> (see <where>)")``, keeps the other
regions' solutions without their markers, and writes the manifest
(``assignment.json``, read back by :func:`read_manifest`) that tells the grader
what to grade.
"""
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from minivae.assignment.exercises import (PACKAGE, AssignmentError, exercise_table, select,
                                         stub_message)
from minivae.assignment.leaks import scan_for_leaks
from minivae.assignment.regions import check_coverage, render, scan

MANIFEST = "assignment.json"      # written by make_assignment at the top of a student edition

# what make_assignment does not copy: version control, builds, environments, caches, runs
SKIP_NAMES = {".git", ".hg", ".svn", "build", "dist", "runs", "venv", ".venv", "env", ".tox",
              ".nox", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache",
              ".ruff_cache", ".ipynb_checkpoints", MANIFEST}
SKIP_SUFFIXES = (".egg-info", ".pyc", ".pyo")


def find_source_root(package=PACKAGE):
    """The source checkout the package is imported from (an editable install), or AssignmentError."""
    module = importlib.import_module(package)
    package_dir = Path(module.__file__).resolve().parent
    root = package_dir.parent
    if ("site-packages" in package_dir.parts or not (root / "tests").is_dir()
            or not any((root / name).is_file() for name in ("setup.cfg", "pyproject.toml", "setup.py"))):
        raise AssignmentError(
            f"this needs the source checkout of {package} (installed with `pip install -e .`), "
            f"but {package} is imported from {package_dir}, which has no setup.cfg or "
            "pyproject.toml and tests/ beside it")
    return root


def _is_student_edition(root):
    return (Path(root) / MANIFEST).is_file()


def reference_solution(package=PACKAGE):
    """(root, None) if the package runs from a solution checkout, else (None, the reason)."""
    try:
        root = find_source_root(package)
    except AssignmentError as error:
        return None, str(error)
    if _is_student_edition(root):
        return None, f"{package} runs from a student edition ({root})"
    return root, None


def read_manifest(directory):
    """The exercise names listed in a student edition's assignment.json, or None without one."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["exercises"]
    except (ValueError, KeyError, TypeError) as error:
        raise AssignmentError(f"{path} is not a manifest written by make ({error!r}); "
                              "pass the exercises with --exercises") from None
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise AssignmentError(f"{path}: 'exercises' must be a list of names, got {names!r}")
    return names


# the instructor's files: never in an edition (the guide explains the solutions' markers); what
# the other pages say of them sits between these two comments, and is left out of an edition
INSTRUCTOR_ONLY = ("docs/assignments.md",)
INSTRUCTOR_ONLY_TEXT = re.compile(r"<!-- instructor-only -->.*?<!-- /instructor-only -->\n?", re.S)
PACKAGE_FILES = "minivae/"       # an edition file here that leaks stops make; elsewhere it is left out


def tracked_files(root):
    """The files git tracks in ``root`` (relative paths), or AssignmentError outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise AssignmentError(f"{root} is not a git checkout: make copies only the files git tracks "
                              "(so notes and scratch files stay home); pass --untracked to copy "
                              "the folder as it is") from None
    return sorted(rel for rel in out.decode().split("\0") if rel and (Path(root) / rel).is_file())


def copy_tracked(root, dest, files):
    """Copy ``files`` (relative paths) of ``root`` into ``dest``, minus the instructor's."""
    for rel in files:
        if rel in INSTRUCTOR_ONLY or rel == MANIFEST:
            continue
        (Path(dest) / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root) / rel, Path(dest) / rel)


def drop_instructor_text(folder):
    """Take out of every Markdown page of ``folder`` what INSTRUCTOR_ONLY_TEXT marks (links to the guide)."""
    for page in Path(folder).rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        if INSTRUCTOR_ONLY_TEXT.search(text):
            page.write_text(INSTRUCTOR_ONLY_TEXT.sub("", text), encoding="utf-8")


def student_readme(names, provided, table):
    """The edition's README.md: what to implement, where, and how to check one exercise."""
    lines = ["# Assignment", "", "Implement the exercises below. Each one is a stub between the lines",
             "`# BEGIN SOLUTION <exercise>` and `# END SOLUTION`: write your code between them, keep",
             "both lines, and change nothing outside them (the grader takes only the lines between the",
             "markers; helpers and imports you need go inside the region). The docstring and the comment",
             "above each stub say what the region receives and what it must return or leave behind.", "",
             "| exercise | points | where | hint |", "| --- | --- | --- | --- |"]
    for name in names:
        entry = table[name]
        where = ", ".join(f"`{f}`" for f in entry["functions"])
        lines.append(f"| `{name}` | {entry['points']:g} | {where} | {entry['hint']} |")
    lines += ["", "Check one exercise while you work (a second or two):", "",
              "    pip install -e .[test]", "    minivae assignment check affine_backward", "",
              "It runs the exercise's checks under the names and points the grader uses: each gradient "
              "against central differences of your forward pass (with the relative error and where it "
              "is worst), values against results known by hand or by identities, float32 against "
              "float64. It has no answer to compare with, so passing it is necessary, not sufficient: "
              "the grader compares with the reference on inputs of its own. "
              "`minivae assignment check affine_backward --tests` runs the exercise's pytest tests "
              "instead (slower, more cases). Several exercises: `check a,b`.", "",
              "Regions of exercises that are not part of this assignment raise \"not part of this "
              "assignment\"" + (f"; provided: {', '.join(provided)}." if provided else "."),
              "Submit your edited `.py` files of `minivae/` (the folder, or the files flat).", ""]
    return "\n".join(lines)


def _skip(name):
    return name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES)


def copy_tree(root, dest):
    """Copy the source tree ``root`` to ``dest`` (created), without what SKIP_NAMES/SKIP_SUFFIXES name.

    Top-level entries starting with "." are not copied either, except .gitignore.
    """
    root, dest = Path(root), Path(dest)

    def ignore(folder, names):
        return [n for n in names if _skip(n)]

    dest.mkdir(parents=True)
    for entry in sorted(root.iterdir()):
        if _skip(entry.name) or (entry.name.startswith(".") and entry.name != ".gitignore"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(entry, dest / entry.name)


def make_assignment(root, out, exercises=None, table=None, package=PACKAGE, provide=(),
                    untracked=False):
    """Write a student edition of the source tree ``root`` into ``out``.

    Each region of the selected exercises becomes its markers around a stub
    ``raise NotImplementedError("Exercise <name>: <hint> (see <where>)")`` at the
    region's indentation; regions of the other exercises keep their lines and lose
    their markers.  Files without regions are copied unchanged.  A manifest
    (``assignment.json``) records the exercises, so ``grade`` knows what to grade.

    ``out`` must not exist or be empty.  Everything is checked (markers, table,
    that every changed module still imports) before ``out`` appears.

    Returns a summary dict: out, exercises, files (the relative paths with stubs), regions
    (how many were stubbed).
    """
    table = exercise_table(table)
    root, out = Path(root).resolve(), Path(out).resolve()
    names = select(exercises, table)
    provided = select(list(provide), table) if provide else []
    if _is_student_edition(root):
        raise AssignmentError(f"{root} is a student edition (it has {MANIFEST}); make the student "
                              "edition from the solution checkout")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AssignmentError(f"--out {out} exists and is not an empty folder; choose a new one")
    if out == root or root in out.parents:
        raise AssignmentError(f"--out {out} lies inside the source tree {root}; choose a folder "
                              "outside it (an edition inside would be copied into the next one)")
    scanned = scan(root, package, table)
    check_coverage(scanned, names, table)

    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        if untracked:
            copy_tree(root, partial)
        else:
            partial.mkdir(parents=True)
            copy_tracked(root, partial, tracked_files(root))
        drop_instructor_text(partial)
        stubbed = []
        for rel, new in edition_sources(scanned, names, provided, table).items():
            regions = scanned[rel][1]
            try:
                compile(new, rel, "exec")
            except SyntaxError as error:
                raise AssignmentError(f"{rel}: the student edition would not be valid Python "
                                      f"(line {error.lineno}: {error.msg}); check the regions' "
                                      "markers in the source") from None
            (partial / rel).write_text(new, encoding="utf-8")
            if any(r["exercise"] in names for r in regions):
                stubbed.append(rel)
        manifest = {"exercises": names, "provided": provided,
                    "points": {n: table[n]["points"] for n in names},
                    "hints": {n: stub_message(n, table) for n in names}}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (partial / "README.md").write_text(student_readme(names, provided, table), encoding="utf-8")
        left_out = _leave_out_leaks(partial, scanned, [n for n in table if n not in provided])
        modules = [package] + [rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in scanned]
        _check_imports(partial, modules)
        if out.exists():
            out.rmdir()
        partial.rename(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    n_regions = sum(1 for _, regions in scanned.values() for r in regions if r["exercise"] in names)
    return {"out": str(out), "exercises": names, "provided": provided, "files": stubbed,
            "regions": n_regions, "left_out": left_out}


def _leave_out_leaks(folder, scanned, withheld):
    """Run the leak scan; leave out every leaking file outside the package; return their names.

    Raises AssignmentError if a file of the package still contains a line of a withheld answer.
    """
    leaks = scan_for_leaks(folder, scanned, withheld)
    left_out = sorted({rel for rel, *_ in leaks if not rel.startswith(PACKAGE_FILES)})
    for rel in left_out:
        (Path(folder) / rel).unlink()
    inside = [leak for leak in leaks if leak[0].startswith(PACKAGE_FILES)]
    if inside:
        rel, number, name, source = inside[0]
        raise AssignmentError(f"leak scan: {rel}:{number} repeats a line of the solution of {name} "
                              f"({source}), and {len(inside) - 1} more; write it once, in the stubbed module")
    return left_out


def edition_sources(scanned, names, provided=(), table=None):
    """The region files of an edition: {relative path: text} from ``scanned`` (scan of the solution).

    Regions of ``names`` (assigned) become their markers around a stub raising the
    exercise's hint; regions of ``provided`` keep the solution without markers;
    every other region (withheld) becomes its markers around a stub saying the
    exercise is not part of this assignment.
    """
    table = exercise_table(table)

    def replace(region, body):
        indent, name = region["indent"], region["exercise"]
        if name in provided and name not in names:
            return body                                          # the solution, without markers
        message = (stub_message(name, table) if name in names else
                   f"Exercise {name} is not part of this assignment")
        return [f"{indent}# BEGIN SOLUTION {name}\n",
                f"{indent}raise NotImplementedError({_quote(message)})\n",
                f"{indent}# END SOLUTION\n"]

    return {rel: render(text, regions, replace) for rel, (text, regions) in scanned.items()}


def _quote(message):
    """A double-quoted Python string literal of ``message``."""
    return '"' + message.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _environment(tree):
    """os.environ with ``tree`` first on PYTHONPATH, and no .pyc files written into it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _check_imports(tree, modules):
    """Import ``modules`` from ``tree`` in a fresh interpreter; AssignmentError if that fails."""
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % (sorted(set(modules)),)
    result = subprocess.run([sys.executable, "-c", code], cwd=tree, env=_environment(tree),
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise AssignmentError(f"the student edition does not import: {last}")
