"""Layers point one way (../shared/DESIGN.md): decoding knows nothing of data, training, evaluation or serving; data
knows nothing of training or evaluation; training and evaluation use data; serving uses decoding; the vLLM plugin
uses decoding's rules (and the library's loaders to export); only the command line sees everything.
Every import counts, the lazy ones inside functions included."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "personalign"
LAYERS = ("decoding", "data", "training", "evaluation", "serving", "vllm_plugin", "commands", "api", "cli")
# what each layer may import besides the neutral modules at the top (errors, preferences, prompts, models, ...)
ALLOWED = {
    "core": set(),
    "decoding": {"decoding"},
    "data": {"data", "decoding"},
    "training": {"training", "data"},
    "evaluation": {"evaluation", "data", "decoding", "api"},
    "api": {"decoding"},
    "serving": {"serving", "decoding"},
    "vllm_plugin": {"vllm_plugin", "decoding", "api"},  # decoding's rules inside vLLM; the export loads PersRMs
}


def module_name(path: Path) -> str:
    return ".".join(("personalign", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def layer_of(module: str) -> str:
    if module == "personalign":
        return "front"  # the package's front door re-exports the library
    top = module.split(".")[1]
    return top if top in LAYERS else "core"


def imports_of(path: Path) -> set[str]:
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            found.update(n for n in names if n.startswith("personalign"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("personalign"))
    return found


def test_the_import_scanner_sees_relative_and_lazy_imports():
    found = imports_of(PACKAGE / "commands" / "data_synth.py")
    assert "personalign.evaluation.judges.offline" in found and "personalign.api" in found
    assert "personalign.decoding.rules" in imports_of(PACKAGE / "vllm_plugin" / "processor.py")
    assert layer_of("personalign.data.synth") == "data" and layer_of("personalign.errors") == "core"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_point_one_way(path):
    module = module_name(path)
    layer = layer_of(module)
    if layer not in ALLOWED:  # the command line and the package's front door see everything
        return
    wrong = sorted(m for m in imports_of(path) if layer_of(m) not in ALLOWED[layer] | {"core"})
    assert not wrong, f"{module} ({layer}) imports {wrong}"
