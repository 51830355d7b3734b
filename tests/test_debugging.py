"""Every debugger session the docs show is run as a student would run it, and must print what they show.

docs/debugging.md and tutorial 08 show pdb sessions as transcripts in ```text blocks, each
after an HTML comment ``<!-- debugging-session -->``; the scripts they run are the ```python
blocks after ``<!-- debugging-session-file: NAME -->``.  Here each script is saved in a fresh
folder outside the repository (``tmp_path``, standing for the transcripts' ``/home/you``),
each ``$`` command is run there with the ``(Pdb)`` commands of its transcript as its input,
and what it prints is compared with the transcript line by line: the lines pdb stops at
(``> file(line)function()`` and ``-> source``) and every value it prints.  Only the paths
(``/home/you/minivae/minivae`` is the installed package) and the line numbers are the
reader's own: a number in a transcript's ``grep -n`` output is mapped to the line of the same
text in today's file, and line numbers are otherwise compared as ``#``.  A ``...`` line in a
transcript stands for any number of lines.

``<!-- debugging-session: breakpoint() before "TEXT" -->`` runs the session on a copy of the
package with ``breakpoint()`` put on the line before the one holding TEXT, as the docs tell a
student to do (the copy comes first on ``PYTHONPATH``).
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import minivae

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(minivae.__file__).resolve().parent
VAE_PY = PACKAGE / "vae.py"
DOC_PACKAGE = "/home/you/minivae/minivae"
DOC_HOME = "/home/you"
SOURCES = {"docs/debugging.md": ROOT / "docs" / "debugging.md",
           "tutorials/08": ROOT / "tutorials" / "08_debugging_a_gradient.py"}
MARKER = re.compile(r"<!-- debugging-session(-file: (?P<file>[\w.]+)|: breakpoint\(\) before \"(?P<before>[^\"]+)\")? -->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\w*)\s*$")


def markdown_of(path):
    """The Markdown of a doc page, or of a tutorial's text cells (their '# ' taken off)."""
    text = path.read_text()
    if path.suffix == ".py":
        text = "\n".join(line[2:] if line.startswith("# ") else line[1:] if line.startswith("#") else ""
                         for line in text.splitlines())
    return text


def blocks(text):
    """(marker match, fenced block text) for each marked block, in order."""
    lines, found = text.splitlines(), []
    for number, line in enumerate(lines):
        marker = MARKER.search(line)
        if not marker:
            continue
        start = next(i for i in range(number + 1, len(lines)) if FENCE.match(lines[i]))
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
        found.append((marker, textwrap.dedent("\n".join(lines[start + 1:end]))))
    return found


def sessions(source):
    """[(files {name: text}, marker, transcript)] of one page; each session sees the files before it."""
    files, found = {}, []
    for marker, text in blocks(markdown_of(SOURCES[source])):
        if marker.group("file"):
            files[marker.group("file")] = text + "\n"
        else:
            found.append((dict(files), marker, text))
    return found


ALL = [pytest.param(source, index, id=f"{source}-{index}")
       for source in SOURCES for index in range(len(sessions(source)))]


def grep_lines(transcript):
    """{number in the transcript: number of the same text in today's vae.py}, from `grep -n` output."""
    today = VAE_PY.read_text().splitlines()
    mapping = {}
    for number, text in re.findall(r"^(\d+):(.*)$", transcript, flags=re.M):
        assert today.count(text) == 1, f"the transcript's line {text.strip()!r} is not once in vae.py"
        mapping[int(number)] = today.index(text) + 1
    return mapping


def commands(transcript):
    """[(shell command, [pdb commands], expected output lines)] of a transcript."""
    runs = []
    for line in transcript.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], [], []))
        else:
            runs[-1][2].append(line)
            if line.startswith("(Pdb) "):
                runs[-1][1].append(line[len("(Pdb) "):])
    return runs


def normalise(text, package, home):
    """Paths as the transcripts write them, line numbers as '#'."""
    text = text.replace(str(package), DOC_PACKAGE).replace(str(home), DOC_HOME)
    text = re.sub(r"\.py\((\d+)\)", ".py(#)", text)
    text = re.sub(r"\.py:(\d+)", ".py:#", text)
    return re.sub(r"^(\d+):", "#:", text, flags=re.M)


def matches(expected, actual):
    """Line by line, '...' in `expected` standing for any number of lines of `actual`."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and matches(expected[1:], actual[1:])


def run(shell, typed, cwd, package, env, line_map):
    """Run one `$` command in `cwd`, pdb's commands as its input; return its transcript."""
    shown = list(typed)                  # as the docs write them: their paths and line numbers
    words = shlex.split(shell)
    run_env = dict(env)
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        run_env[name] = value
    words = [sys.executable if w == "python" else w for w in words]
    words = [w.replace(DOC_PACKAGE, str(package)).replace(DOC_HOME, str(cwd)) for w in words]
    words = [str(ROOT / w) if w.startswith("tutorials/") else w for w in words]
    if words[0] == "grep" and not shutil.which("grep"):
        pytest.skip("no grep on this system")

    def real_line(match):
        return str(line_map.get(int(match.group(1)), int(match.group(1))))

    typed = [re.sub(r"(?<=vae\.py:)(\d+)", real_line, re.sub(r"^(b(?:reak)? )(\d+)$",
             lambda m: m.group(1) + real_line(re.match(r"(\d+)", m.group(2))), t)) for t in typed]
    sent = [t.replace(DOC_PACKAGE, str(package)).replace(DOC_HOME, str(cwd)) for t in typed]
    result = subprocess.run(words, cwd=cwd, env=run_env, input="".join(t + "\n" for t in sent),
                            capture_output=True, text=True, timeout=600)
    # pdb does not echo what it reads from a pipe: put each command back after its prompt (the
    # last prompts are the session's; a tutorial may print a "(Pdb) " transcript of its own first)
    first, *answers = result.stdout.rsplit("(Pdb) ", len(typed)) if typed else [result.stdout]
    return first + "".join(f"(Pdb) {t}\n{answer}" for t, answer in zip(shown, answers)), result


@pytest.mark.parametrize("source, index", ALL)
def test_the_debugger_session_prints_what_the_docs_show(source, index, tmp_path):
    files, marker, transcript = sessions(source)[index]
    home = tmp_path / "you"
    home.mkdir()
    for name, text in files.items():
        (home / name).write_text(text)
    package = PACKAGE
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONBREAKPOINT", "PYTHONPATH")}
    env.update(MPLBACKEND="Agg", MINIVAE_FIGURES=str(tmp_path / "figures"), MINIVAE_FAST="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    if marker.group("before"):
        copy = tmp_path / "copy"
        shutil.copytree(PACKAGE, copy / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
        lines = (copy / "minivae" / "vae.py").read_text().splitlines(keepends=True)
        [at] = [i for i, line in enumerate(lines) if marker.group("before") in line]
        indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
        lines.insert(at, f"{indent}breakpoint()\n")
        (copy / "minivae" / "vae.py").write_text("".join(lines))
        env["PYTHONPATH"] = str(copy)
        package = copy / "minivae"
    line_map = {}
    for _, _, doc in sessions(source):
        line_map.update(grep_lines(doc))
    for shell, typed, expected in commands(transcript):
        shown, result = run(shell, typed, home, package, env, line_map)
        actual = normalise(shown, package, home).rstrip("\n").splitlines()
        expected = normalise("\n".join(expected), package, home).splitlines()
        assert matches(expected, actual), (
            f"{source}: `$ {shell}` printed\n" + "\n".join(actual)
            + "\n\nwhere the docs show\n" + "\n".join(expected) + f"\n\n(stderr: {result.stderr[-2000:]})")


def test_every_page_shows_sessions_and_every_session_stops_somewhere():
    for source in SOURCES:
        found = sessions(source)
        assert found, f"{source} shows no debugger session"
    stops = [line for source in SOURCES for _, _, t in sessions(source) for line in t.splitlines()
             if line.startswith("> ")]
    assert any("vae.py(" in line and "backward_to_encoder_output" in line for line in stops)


def test_each_search_string_of_the_stage_table_is_once_in_vae_py():
    text = (ROOT / "docs" / "debugging.md").read_text()
    table = text.split("| stage | search for |", 1)[1].split("\n\n", 1)[0]
    searches = re.findall(r"^\| \d\. [^|]+\| `([^`]+)` \|", table, flags=re.M)
    assert len(searches) == 6
    source = VAE_PY.read_text()
    for search in searches:
        assert source.count(search) == 1, f"docs/debugging.md: {search!r} is in vae.py {source.count(search)} times"


def test_a_transcript_that_no_longer_holds_fails():
    good = ["> /home/you/minivae/minivae/vae.py(#)backward_to_encoder_output()",
            "-> dmu_z, dlogvar_z = dist.gaussian_sample_backward(dz, cache[\"sample_cache\"])"]
    assert matches(good, good) and matches(["...", good[1]], good)
    assert not matches(good, [good[0].replace("backward_to_encoder_output", "backward"), good[1]])
    assert not matches(good[:1], good)
