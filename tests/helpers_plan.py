"""Which way each checkout planned: by the stat table or by a scan (worktree.plan)."""

from __future__ import annotations

from gitrepro.worktree import plan


def planned(monkeypatch) -> list[str]:
    """A list that gets "by_table" or "by_scan" for each plan a checkout made from then on."""
    ways: list[str] = []
    for name in ("by_table", "by_scan"):
        def traced(*args, _real=getattr(plan, name), _name=name, **kwargs):
            found = _real(*args, **kwargs)
            if found is not None:
                ways.append(_name)
            return found
        monkeypatch.setattr(plan, name, traced)
    return ways
