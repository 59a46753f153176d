"""The house rules that keep the layout readable: which room imports which, one registry of judged
statistics, and a command line that starts without loading the heavy libraries."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from monitor.core.events import Reason
from monitor.core.statistics import JUDGED, judged_for

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "monitor"
# What each room may import from the package; the core also imports no Kafka, Faust, HTTP or metrics library.
ALLOWED = {
    "core": {"monitor", "monitor.core"},
    "export": {"monitor", "monitor.core", "monitor.export"},
    "stream": {"monitor", "monitor.core", "monitor.export", "monitor.stream", "monitor.config"},
    "config": {"monitor", "monitor.core"},
}
FORBIDDEN_IN_CORE = {"faust", "mode", "aiokafka", "aiohttp", "prometheus_client"}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_room_imports_only_what_it_may(path: Path) -> None:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    allowed = ALLOWED.get(room(name))
    if allowed is None:  # the commands and the package's entry points may import any room
        return
    ours = {m for m in imports(path) if m.split(".")[0] == "monitor"}
    outside = {m for m in ours if not any(m == a or m.startswith(a + ".") for a in allowed if a != "monitor")
               and m not in ("monitor", "monitor.core")}
    assert not outside, f"{name} imports {sorted(outside)}"
    if room(name) == "core":
        libraries = {m.split(".")[0] for m in imports(path)} & FORBIDDEN_IN_CORE
        assert not libraries, f"{name} imports {sorted(libraries)}: the core stays pure"


def test_the_layout_rule_catches_a_core_module_that_imports_kafka(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from aiokafka import AIOKafkaConsumer\n    from monitor.stream import app\n")
    assert {"aiokafka", "monitor.stream"} <= imports(module)


def test_the_config_schema_names_the_registered_statistics() -> None:
    schema = orjson.loads((ROOT / "schemas" / "config.schema.json").read_bytes())
    assert set(schema["definitions"]["thresholds"]["properties"]) == set(JUDGED)


def test_the_readme_thresholds_are_the_registry_defaults() -> None:
    rows = re.findall(r"^\| `(\w+)`[^|]*\| ([\d.]+) \| ([\d.]+) \|$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert {name: (float(w), float(c)) for name, w, c in rows} == {
        name: (j.threshold.warning, j.threshold.critical) for name, j in JUDGED.items()}


def test_the_readme_names_every_dead_letter_reason() -> None:
    listed = re.findall(r"\(((?:`\w+`, )+`\w+`)\)", (ROOT / "README.md").read_text())
    reasons = [set(re.findall(r"`(\w+)`", names)) for names in listed if "not_json" in names]
    assert len(reasons) == 2 and all(names == {str(r) for r in Reason} for names in reasons)


def test_every_channel_kind_is_judged_on_registered_statistics() -> None:
    kinds = {kind for judged in JUDGED.values() for kind in judged.kinds}
    assert kinds == {"numeric", "descriptor", "categorical", "vocabulary", "performance"}
    assert all(judged_for(kind) for kind in kinds) and judged_for("nothing") == ()


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    script = ("import sys; from monitor.commands.cli import _parser; _parser().format_help(); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in "
              "{'numpy', 'scipy', 'river', 'faust', 'aiokafka', 'pyarrow', 'prometheus_client'}))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
