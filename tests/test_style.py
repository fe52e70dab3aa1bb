"""House rules the suite enforces: dependencies point one way, ruff is clean, no module grows unreadable."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from graphlib import TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "config", "tickets", "intake", "replies", "classifier", "notifier", "dashboard", "handover")
COMPOSITION = ("app", "service", "demo")  # the composition root and the CLI may import every room
# A smell alarm, not a design rule: modules are split by concept; one this long is worth a look.
MAX_LINES = 800

# Which component may import which (docs/architecture.md, "Allowed dependencies").  A module belongs
# to the longest matching prefix.  Mail flows receive -> pipeline -> tickets; the notifier and the
# replies room sit beside the pipeline and meet it only in tickets (and, for replies, the thread
# protocol); the readers (dashboard, handover) read tickets and the digests.  Nothing points back.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": {"core"},
    "tickets": {"core", "config"},
    "intake.parse": {"core", "config"},
    "classifier": {"core", "config", "tickets", "intake.parse"},
    "intake": {"core", "config", "tickets", "intake.parse", "classifier"},
    "intake.receive": {"core", "config", "tickets", "intake.parse", "intake"},
    "intake.cli": {"core", "config", "tickets", "intake", "intake.receive"},
    "intake.poll_cli": {"core", "config", "tickets", "intake", "intake.receive"},
    "notifier": {"core", "config", "tickets"},
    "replies": {"core", "config", "tickets", "intake.parse", "intake", "notifier"},
    "dashboard": {"core", "config", "tickets", "notifier"},
    "handover": {"core", "config", "tickets", "notifier"},
}


def component(module: str) -> str | None:
    """The ALLOWED key *module* belongs to, "*" for the composition root, None for a third-party module."""
    if module.split(".")[0] in COMPOSITION:
        return "*"
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in ALLOWED:
            return ".".join(parts[:n])
    return None


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every absolute import in *path*, function-local and TYPE_CHECKING ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def source_modules() -> dict[str, Path]:
    modules = {name: ROOT / f"{name}.py" for name in COMPOSITION}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_dependencies_point_one_way():
    violations = []
    for module, path in source_modules().items():
        source = component(module)
        assert source is not None, f"{module} belongs to no component: add its package to ALLOWED"
        if source == "*":
            continue
        for target, line in imports_of(path):
            aim = component(target)
            if aim in (None, "*", source) or aim in ALLOWED[source]:
                continue
            violations.append(f"{path.relative_to(ROOT)}:{line}: {source} -> {aim} ({target})")
    assert not violations, "imports against the allowed direction:\n" + "\n".join(sorted(set(violations)))


def test_allowed_dependencies_have_no_cycle():
    TopologicalSorter(ALLOWED).static_order()  # raises CycleError


def test_the_import_scan_sees_function_local_imports(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def later():\n    from notifier.mime import build_mime\n    return build_mime\n")
    assert ("notifier.mime", 2) in imports_of(sneaky)
    assert component("notifier.mime") == "notifier" and "notifier" not in ALLOWED["intake"]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency: pip install -e '.[test]'"
    result = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_no_module_over_the_size_limit():
    sources = [ROOT / name for name in ("service.py", "app.py", "demo.py")]
    for package in PACKAGES:
        sources += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    too_long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not too_long, f"split these modules (over {MAX_LINES} lines): {too_long}"


def test_every_exception_the_desk_defines_has_the_one_root():
    """A new exception outside the tree would turn a user's mistake into a traceback (service.main)."""
    import importlib

    from core.errors import HypercareError

    strays = []
    for module in source_modules():
        if module in COMPOSITION:
            continue
        loaded = importlib.import_module(module)
        for name, value in vars(loaded).items():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == module:
                if not issubclass(value, HypercareError):
                    strays.append(f"{module}.{name}")
    assert not strays, f"derive these from core.errors (UserError, TryLater or HypercareError): {strays}"


def test_service_turns_the_two_branches_into_their_exit_codes(monkeypatch, capsys):
    import service
    from core.errors import TryLater, UserError

    def failing(error):
        def handler(app, args):
            raise error
        return handler

    for error, code in ((UserError("[support] address: fix it"), 2), (TryLater("database is locked"), 75)):
        monkeypatch.setattr(service, "cmd_tick", failing(error))
        assert service.main(["tick"]) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(error) in err and "Traceback" not in err
