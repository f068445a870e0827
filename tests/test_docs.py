"""The documentation names only what exists: README.md, BENCHMARKS.md and docs/*.md link to files
and headings that are there, and every repository path, ``python -m`` module and dotted
``mer_jax.``/``pipelines.`` name they mention resolves (a renamed file or function fails here)."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]
PACKAGES = ("mer_jax", "pipelines", "benchmarks")
PATH = re.compile(r"(?<![\w./-])((?:mer_jax|pipelines|benchmarks|configs|tests|docs)/"
                  r"[\w./{},<>*-]*[\w/}>*])")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines()
            if line.startswith("#")}


def module_file(dotted: str) -> bool:
    base = REPO.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def test_the_docs_are_split_by_stage_and_the_readme_links_each_page():
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert len(pages) >= 8
    readme = (REPO / "README.md").read_text()
    assert [p for p in pages if f"(docs/{p})" not in readme] == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or (anchor and anchor not in anchors(path)):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_paths_and_modules_exist(doc):
    text = doc.read_text()
    missing = [p for p in PATH.findall(text)
               if not re.search(r"[<*{]|/[A-Z]+\.", p) and not (REPO / p).exists()]
    modules = [m.rstrip(".") for m in re.findall(r"python3? -m ([a-zA-Z_][\w.]*)", text)]
    missing += [m for m in modules if m.split(".")[0] in PACKAGES and not module_file(m)]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_dotted_names_resolve(doc):
    unresolved = []
    for name in sorted(set(re.findall(r"(?<![\w/])((?:mer_jax|pipelines)(?:\.\w+)+)",
                                      doc.read_text()))):
        parts = name.split(".")
        i = next(i for i in range(len(parts), 0, -1) if module_file(".".join(parts[:i])))
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            for attribute in parts[i:]:
                obj = getattr(obj, attribute)
        except (ImportError, AttributeError) as err:
            unresolved.append(f"{name}: {err}")
    assert unresolved == []
