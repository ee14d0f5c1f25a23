"""loadtests.ab's side A: another commit in a temporary git worktree, whose code its runs import."""
from __future__ import annotations

import subprocess
import sys

import pytest

from loadtests import ab


def _worktrees() -> str:
    return subprocess.run(["git", "-C", str(ab.ROOT), "worktree", "list"], capture_output=True, text=True,
                          check=True).stdout


def test_a_commit_is_checked_out_for_its_runs_and_removed_after():
    head = subprocess.run(["git", "-C", str(ab.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with ab.worktree("HEAD") as tree:
        assert (tree / "loadtests" / "bench.py").exists() and str(tree) in _worktrees()
        assert subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() == head
        # A run of side A imports the mesh, its services and the generated stubs from the worktree,
        # not from this checkout's editable install.
        found = subprocess.run(
            [sys.executable, "-c", "import erp, mesh, services.orders; print(mesh.__file__); "
                                   "print(services.orders.__file__); print(list(erp.__path__)[0])"],
            cwd=tree, env=ab.side_env(tree), capture_output=True, text=True, check=True).stdout.split()
        assert found and all(path.startswith(str(tree)) for path in found), found
    assert not tree.exists() and str(tree) not in _worktrees()


def test_both_sides_are_measured_by_this_checkouts_bench():
    """A commit from before the bench's last change gets this checkout's loadtests/ in its worktree."""
    last = subprocess.run(["git", "-C", str(ab.ROOT), "log", "-1", "--format=%H", "--", "loadtests/bench.py"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with ab.worktree(f"{last}~1") as tree:
        assert (tree / "loadtests" / "bench.py").read_bytes() == (ab.ROOT / "loadtests" / "bench.py").read_bytes()
        assert (tree / "loadtests" / "ab.py").read_bytes() == (ab.ROOT / "loadtests" / "ab.py").read_bytes()
    assert not tree.exists()


def test_a_commit_that_is_not_there_is_refused_and_leaves_nothing():
    before = _worktrees()
    with pytest.raises(SystemExit, match="cannot check out no-such-rev"), ab.worktree("no-such-rev"):
        pass
    assert _worktrees() == before
