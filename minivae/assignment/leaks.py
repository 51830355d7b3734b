"""The leak scan: does any file of a student edition contain a line of a solution it withholds?

Every line of every withheld or assigned region of the solution is normalised
(whitespace squeezed, a trailing comment dropped) and searched for in every text
file of the edition, after the same normalisation.  Trivial lines (shorter than
MIN_CHARS non-space characters, like ``h = cache`` or ``return dx``) are skipped:
they are no answer and appear in stubs and tests anyway; so are the headers of
compound statements (``if self.likelihood == "bernoulli":``), which repeat the
structure of the given code, not an answer.
"""
import re
from pathlib import Path

MIN_CHARS = 20
_SPACE = re.compile(r"\s+")
_HEADER = re.compile(r"^\s*(if|elif|else|for|while|try|except|with)\b[^#]*:\s*(#.*)?$")


def normalise(line):
    """A code line without its comment and with no whitespace at all (so spacing cannot hide it)."""
    code = line.split("#", 1)[0] if "#" in line and not re.search(r"[\"'].*#", line) else line
    return _SPACE.sub("", code)


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
    """[(edition file, line number, exercise, solution file:line)] of every leaked line."""
    wanted, leaks = solution_lines(scanned, names), []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue                                   # binary data (e.g. the MNIST subset)
        for number, line in enumerate(text.splitlines(), 1):
            hit = wanted.get(normalise(line))
            if hit is None:       # a notebook's JSON string or a docstring: the line inside quotes
                inner = line.strip().strip('",').replace("\\n", "").replace('\\"', '"')
                hit = wanted.get(normalise(inner))
            if hit is not None:
                rel = path.relative_to(folder).as_posix()
                leaks.append((rel, number, hit[0], f"{hit[1]}:{hit[2]}"))
    return leaks
