"""House rules the suite enforces: ruff clean, and no module grows past the size one can read in one pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "tickets", "intake", "classifier", "notifier", "dashboard", "handover")
MAX_LINES = 400


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
