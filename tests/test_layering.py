"""The package's layering: the engine is the core, training, evaluation and the two adapters each depend on it
and never on each other, and only the command line composes them."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gmsa_integrations"
CLIENTS = {"training", "evaluation", "langchain", "llama_index"}
ALLOWED = {
    "engine": {"engine", "io"},
    "data": {"data", "io"},
    **{client: {client, "engine", "data", "io", "extras", "embeddings"} for client in CLIENTS},
}


def _imported_subpackages(path: Path) -> set[str]:
    """First-level names of gmsa_integrations that ``path`` imports (relative or absolute)."""
    module_parts = path.relative_to(PACKAGE).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_parts[: len(module_parts) - node.level]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [target[0]] if target else [alias.name for alias in node.names]
            elif node.module and node.module.startswith("gmsa_integrations."):
                names = [node.module.split(".")[1]]
            else:
                continue
            found.update(names)
    return found


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_each_layer_imports_only_what_is_below_it(subpackage):
    for path in (PACKAGE / subpackage).rglob("*.py"):
        outside = _imported_subpackages(path) - ALLOWED[subpackage]
        assert not outside, f"{path.relative_to(PACKAGE)} imports {sorted(outside)}"


def test_nothing_in_the_library_imports_the_command_line():
    for path in PACKAGE.rglob("*.py"):
        if "cli" not in path.relative_to(PACKAGE).parts and path.name != "__main__.py":
            assert "cli" not in _imported_subpackages(path), path
