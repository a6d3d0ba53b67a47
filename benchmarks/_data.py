"""Benchmark inputs shared by the scripts, generated once and cached under var/bench/ (deterministic)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"
MAKE_EVIDENCE = Path("/work/shared/bench/make_evidence.py")
MIB = 1024 * 1024


def evidence(scale: float) -> Path:
    """Evidence files at ``scale``, generated once per scale; the marker file is written last, so an interrupted
    run is redone."""
    target = CACHE / f"evidence-{scale:g}"
    marker = CACHE / f"evidence-{scale:g}.done"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        print(f"generating evidence at scale {scale:g} in {target} ...", flush=True)
        result = subprocess.run(  # noqa: S603 - our own generator
            [sys.executable, MAKE_EVIDENCE, target, "--scale", str(scale)], check=True, capture_output=True, text=True
        )
        marker.write_text(result.stdout)
    return target


def artifact_file(size_mib: int) -> Path:
    """Deterministic incompressible bytes of ``size_mib`` MiB, generated once per size."""
    path = CACHE / f"artifact-{size_mib}MiB.bin"
    if path.exists() and path.stat().st_size == size_mib * MIB:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"generating a {size_mib} MiB artifact in {path} ...", flush=True)
    seed = hashlib.sha512(b"dossier download benchmark").digest()
    with open(path, "wb") as out:
        for block in range(size_mib):
            seed = hashlib.sha512(seed + block.to_bytes(4, "big")).digest()
            out.write(hashlib.shake_256(seed).digest(MIB))
    return path
