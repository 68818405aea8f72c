"""Helpers several search test modules share (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path


def family(g0, *, seed: int, size: int) -> list:
    """``g0`` and ``size`` descendants, each two edits from a random earlier member (seeded)."""
    import random

    from zenfx.genome import mutate

    rng = random.Random(seed)
    genomes = [g0]
    for _ in range(size):
        genomes.append(mutate(rng.choice(genomes), rng, 2))
    return genomes


def kill_search_mid_run(cmd: list[str], out: Path, *, env: dict[str, str], cwd: Path | None = None) -> int:
    """Start ``cmd`` (a ``zenfx search`` writing ``out``), SIGKILL its process group after the first
    round's checkpoint (mid second round), and return its exit status (``-SIGKILL`` when killed)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            ck = out / "checkpoint.json"
            if ck.exists() and json.loads(ck.read_text() or "{}").get("rows", 0) >= 5:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return proc.returncode
