"""Child processes of the test process, from /proc: a test that forks asserts it left none behind
(not even a zombie). Servers that session-scoped fixtures started are children too, so a test
compares against the children it started with."""

from __future__ import annotations

import os


def children_of_this_process() -> set[int]:
    me = str(os.getpid())
    children = set()
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1] == me:
                children.add(int(pid))
        except OSError:
            pass
    return children
