"""bench/ab.py: two versions of the server timed in turns on identical clusters."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AB = REPO / "bench" / "ab.py"
SMALL = ["--n", "3", "--size", "512", "--rows", "3000", "--dn", "2"]


def test_one_measurement_runs_the_tree_it_is_started_in():
    out = subprocess.run([sys.executable, str(AB), "--one", "query10", *SMALL],
                         cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=300, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["kind"] == "query10" and got["tree"] == str(REPO)
    assert got["ms"] >= got["min_ms"] > 0
    assert set(got["cpu_ms"]) == {"client", "sn", "dns"}


def worktrees() -> list:
    return subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True,
                          text=True, check=True).stdout.splitlines()


def test_it_compares_the_working_tree_with_a_revision():
    before = worktrees()
    out = subprocess.run([sys.executable, str(AB), "--rounds", "1", "--base", "HEAD", *SMALL,
                          "column", "meta"], cwd=REPO, capture_output=True, text=True,
                         timeout=600, check=True).stdout
    lines = out.strip().splitlines()
    for kind in ("column", "meta"):
        assert any(ln.startswith(f"{kind}: A (HEAD) ") and " ms (CPU ms: client " in ln
                   for ln in lines), out
        assert any(ln.startswith(f"{kind}: B (working tree) ") for ln in lines), out
        assert any(ln.startswith(f"{kind}: B/A ") for ln in lines), out
    assert worktrees() == before            # its own worktree is gone


def test_it_refuses_an_unknown_kind():
    out = subprocess.run([sys.executable, str(AB), "columns"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "column, points, query10, meta" in out.stderr
