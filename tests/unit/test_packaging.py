"""The wheel ships every package and data file the code needs."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO

ROOTS = {
    "mailbot": "mailbot",
    "parsers": "mailbot.parsers",
    "storage": "mailbot.storage",
    "templates": "mailbot.templates",
}


def test_every_python_package_in_the_tree_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            if "__pycache__" not in rel.parts:
                found.add(".".join([name, *rel.parts]))
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_templates_and_data_files_are_covered_by_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = config["tool"]["setuptools"]["package-data"]
    root = REPO / "templates"
    files = {
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    covered = set()
    for package, patterns in package_data.items():
        if package == "mailbot.templates" or package.startswith("mailbot.templates."):
            folder = root.joinpath(*package.split(".")[2:])
            covered |= {p for pattern in patterns for p in folder.glob(pattern)}  # setuptools'
    assert files
    assert sorted(files - covered) == []


def test_every_data_folder_is_a_listed_package() -> None:
    """setuptools warns (~85 lines per install) about data folders not listed as packages."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    root = REPO / "templates"
    folders = {
        ".".join(["mailbot.templates", *p.parent.relative_to(root).parts]).rstrip(".")
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "mailbot.templates.mail" in folders
    assert folders - listed == set()
