"""The shape of the code: the app crate's modules import one way, with no cycle (see
tests/tools/import_cycles.py, which anyone can run)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_no_import_cycle_among_the_app_modules():
    out = subprocess.run([sys.executable, str(ROOT / "tests/tools/import_cycles.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no import cycle" in out.stdout


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    # The checker itself must be able to fail: two modules that import each other.
    src = tmp_path / "src"
    src.mkdir()
    (src / "lib.rs").write_text("mod a;\nmod b;\n")
    (src / "a.rs").write_text("use crate::b::B;\npub struct A;\n")
    (src / "b.rs").write_text("use crate::a::{A};\npub struct B;\n")
    tools = tmp_path / "tests" / "tools"
    tools.mkdir(parents=True)
    script = tools / "import_cycles.py"
    script.write_text((ROOT / "tests/tools/import_cycles.py").read_text())
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert out.returncode == 1, out.stdout
    assert "cycle: a -> b" in out.stdout
