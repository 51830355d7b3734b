"""The docs and the code point at each other: every backward function names its derivation,
and every section of docs/derivations.md names the function that implements it."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DERIVATIONS = (ROOT / "docs" / "derivations.md").read_text()
HEADINGS = set(re.findall(r"^## (.+)$", DERIVATIONS, flags=re.M))


def package_functions():
    """(module file, qualified name, node) of every module-level function and class method."""
    for path in sorted((ROOT / "minivae").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                yield path.name, node.name, node
            elif isinstance(node, ast.ClassDef):
                yield path.name, node.name, node
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        yield path.name, f"{node.name}.{item.name}", item


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
    names |= {f"{module[:-3]}.{name}" for module, name, _ in package_functions()}
    for section in re.split(r"^## ", DERIVATIONS, flags=re.M)[1:]:
        title = section.splitlines()[0]
        quoted = {token.removeprefix("minivae.").split("(")[0]
                  for token in re.findall(r"`([^`]+)`", section)}
        assert quoted & names, (f'docs/derivations.md, "{title}": names no function of the package '
                                f"(in backticks, e.g. `nn.affine_backward`)")
