"""The docs and the code point at each other: every backward function names its derivation,
and every section of docs/derivations.md names the function that implements it."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DERIVATIONS = (ROOT / "docs" / "derivations.md").read_text()
HEADINGS = set(re.findall(r"^## (.+)$", DERIVATIONS, flags=re.M))


def package_functions():
    """(module, qualified name, node) of every module-level function and class method.

    ``module`` is the module's dotted name inside the package ("nn", "topics.linear_gaussian").
    """
    for path in sorted((ROOT / "minivae").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "minivae").with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                yield module, node.name, node
            elif isinstance(node, ast.ClassDef):
                yield module, node.name, node
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        yield module, f"{node.name}.{item.name}", item


def test_every_backward_docstring_names_an_existing_section_of_derivations_md():
    found = 0
    for module, name, node in package_functions():
        if not name.endswith("backward"):
            continue
        doc = ast.get_docstring(node) or ""
        where = f"{module}:{node.lineno} {name}"
        assert "docs/derivations.md" in doc, f"{where}: the docstring should point to docs/derivations.md"
        sections = re.findall(r'"([^"]+)"', doc[doc.index("docs/derivations.md"):])
        assert sections and all(s in HEADINGS for s in sections), (
            f"{where}: names sections {sections}; derivations.md has {sorted(HEADINGS)}")
        found += 1
    assert found >= 13     # affine, 5 activations, mlp, 5 distributions, VAE.backward


def test_every_section_of_derivations_md_names_a_function_of_the_package():
    names = {name for _, name, _ in package_functions() if not name.startswith("_")}
    names |= {f"{module}.{name}" for module, name, _ in package_functions()}
    for section in re.split(r"^## ", DERIVATIONS, flags=re.M)[1:]:
        title = section.splitlines()[0]
        quoted = {token.removeprefix("minivae.").split("(")[0]
                  for token in re.findall(r"`([^`]+)`", section)}
        assert quoted & names, (f'docs/derivations.md, "{title}": names no function of the package '
                                f"(in backticks, e.g. `nn.affine_backward`)")


# --- the documentation stands alone: clean text, and every relative link resolves --------------

TEXT_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "tutorials").glob("*.md"),
                     *(ROOT / "tutorials").glob("[0-9][0-9]_*.py")])
# TAB, VT, BEL, ... : what "\t", "\v", "\a" of LaTeX become when a Python string is not raw
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading):
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_docs_and_tutorials_contain_no_control_characters():
    for path in TEXT_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            bad = CONTROL.search(line)
            assert not bad, (f"{path.relative_to(ROOT)}:{number}: control character {bad.group()!r} "
                             f"(a LaTeX \\t, \\v or \\a written in a non-raw Python string?): {line!r}")


def test_every_relative_link_resolves_inside_the_repository():
    checked = 0
    for path in TEXT_FILES:
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target):          # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}: link {target!r}"
            assert resolved.is_relative_to(ROOT), f"{where} leaves the repository"
            assert resolved.exists(), f"{where} points at nothing"
            if anchor and resolved.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", resolved.read_text(), flags=re.M)
                assert anchor in {_slug(h) for h in headings}, f"{where}: no such heading"
            checked += 1
    assert checked >= 50


def _beside_the_checkout(path):
    """The folder beside the repository's checkout that ``path`` lies in, or None."""
    path = path.resolve()
    if path.is_relative_to(ROOT) or not path.is_relative_to(ROOT.parent) or path == ROOT.parent:
        return None
    folder = ROOT.parent / path.relative_to(ROOT.parent).parts[0]
    return folder if folder.is_dir() else None


def test_nothing_names_a_file_outside_the_repository():
    # A reader has only the repository.  In the docs, tutorials, README and CI script every
    # relative path (such as "../tutorials/05_vae.py", relative to the file) must be a file of
    # the repository.  In any file, no path, relative (to the file, or to the checkout where
    # code runs) or absolute, may lead into a folder that sits beside the checkout.
    code = sorted((ROOT / "minivae").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    texts = TEXT_FILES + ([ROOT / ".ci" / "run"] if (ROOT / ".ci" / "run").exists() else [])
    relative = re.compile(r"(?<![\w./])(?:\.\./)+[\w.-][\w./-]*\w")
    absolute = re.compile(r"(?<![\w./~])/[\w.-]+(?:/[\w.-]+)*")
    for path in texts + code:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            names = [(name, [pathlib.Path(name)]) for name in absolute.findall(line)]
            names += [(name, [path.parent / name, ROOT / name]) for name in relative.findall(line)]
            for name, candidates in names:
                for candidate in candidates:
                    folder = _beside_the_checkout(candidate)
                    assert folder is None, f"{where} names {name!r}, in {folder.name}/ beside the repository"
            if path in texts:
                for name in relative.findall(line):
                    resolved = (path.parent / name).resolve()
                    assert resolved.is_relative_to(ROOT) and resolved.exists(), (
                        f"{where} names {name!r}, which is not a file of the repository")


def test_every_seed_step_reference_exists_in_seed_md():
    steps = set(re.findall(r"^## Step (\d+)\.", (ROOT / "docs" / "seed.md").read_text(), flags=re.M))
    assert steps == {str(i) for i in range(1, 11)}
    files = TEXT_FILES + sorted((ROOT / "minivae").glob("*.py"))
    for path in files:
        text = path.read_text()
        assert not re.search(r"seed section|section \d+ of the seed", text, flags=re.I), (
            f"{path.relative_to(ROOT)}: the seed has no numbered sections; cite docs/seed.md, step N")
        for first, last in re.findall(r"seed[^.\n]{0,60}?steps? (\d+)(?:-(\d+))?", text):
            for step in (first, last or first):
                assert step in steps, f"{path.relative_to(ROOT)}: seed step {step} does not exist"


# Inside a Markdown table row, `\|` is the table's escaped column separator: the Markdown parser
# keeps the `|` and drops the backslash, so `\mathrm{KL}(q \,\|\, p)` reaches MathJax as
# `\, |\,` (a single bar) on the site.  In a table's math, the double bar is written `\Vert`
# (outside math, `\|` is the right way to write a literal bar in a cell).
TABLE_ROW = re.compile(r"^(?:# )?\|.*\|\s*$")


def table_rows_with_escaped_bars(text):
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if TABLE_ROW.match(line):
            outside_code = re.sub(r"`[^`]*`", "", line)
            if any("\\|" in math for math in re.findall(r"\$[^$]+\$", outside_code)):
                found.append((number, line.strip()[:120]))
    return found


def test_no_table_row_writes_a_norm_bar_as_backslash_bar():
    sources = TEXT_FILES + sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
    found = [f"{path.relative_to(ROOT)}:{number}: {line}" for path in sources
             for number, line in table_rows_with_escaped_bars(path.read_text())]
    assert not found, "write \\Vert, not \\|, inside a table row:\n" + "\n".join(found)


def test_the_table_check_finds_the_old_text():
    old = r"| 12 | wake-sleep | fits $\mathrm{KL}(p \,\|\, q)$ on dreams |"
    assert table_rows_with_escaped_bars(old) and not table_rows_with_escaped_bars(old.replace(r"\|", r"\Vert"))
    assert not table_rows_with_escaped_bars(r"| command | `minivae reproduce fig2\|iwae` | p(x\|z) |")


# Where the seed text stops is said one way everywhere (docs/seed.md, tutorials 03 and 05, ...).
SEED_STOPS = "stops mid-sentence at the start of step 8"


def sentences_on_where_the_seed_stops(text):
    flat = re.sub(r"\s*\n#?\s*", " ", text)
    return [s for s in re.split(r"(?<=[.;:])\s", flat)
            if re.search(r"\bseed\b", s) and re.search(r"\bstops\b|\bstopped\b|breaks off", s)]


def test_every_page_says_where_the_seed_stops_in_the_same_words():
    found = []
    for path in TEXT_FILES:
        for sentence in sentences_on_where_the_seed_stops(path.read_text()):
            if SEED_STOPS not in sentence:
                found.append(f"{path.relative_to(ROOT)}: {sentence[:160]}")
    assert not found, f"say the seed '{SEED_STOPS}':\n" + "\n".join(found)


def test_the_seed_wording_check_finds_the_old_text():
    old = "the seed text stops\n# before step 8, so everything here completes it."
    assert sentences_on_where_the_seed_stops(old)
    assert not [s for s in sentences_on_where_the_seed_stops(old) if SEED_STOPS in s]


# docs/notation.md: one symbol, one meaning.  Its table "Spellings retired" lists, in backticks,
# what once meant two things; none of them may come back on any page or in any docstring.
NOTATION = (ROOT / "docs" / "notation.md").read_text()


def retired_spellings():
    section = NOTATION.split("## Spellings retired", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [spelling for row in rows for spelling in re.findall(r"`([^`]+)`", row.split("|")[1])]


def uses_of_retired_spellings(text):
    return [s for s in retired_spellings() if s in text]


# notation.md names the retired spellings on purpose
NOT_YET_CHECKED = {"notation.md"}


def test_no_page_or_docstring_uses_a_retired_spelling():
    sources = [p for p in TEXT_FILES if p.name not in NOT_YET_CHECKED] + sorted((ROOT / "minivae").rglob("*.py"))
    found = [f"{path.relative_to(ROOT)}: {spelling}" for path in sources
             for spelling in uses_of_retired_spellings(path.read_text())]
    assert not found, "docs/notation.md retired these spellings:\n" + "\n".join(found)


def test_the_notation_check_finds_the_old_text():
    assert len(retired_spellings()) >= 8
    old = r"$M = W^\top W + \sigma^2 I_D$; the distortion $D$; given dL/dz; $W = U_D(\Lambda_D - \sigma^2 I)$"
    assert len(uses_of_retired_spellings(old)) == 5      # \Lambda_D matches two spellings
