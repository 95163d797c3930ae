"""Sample tensors that ship with the project (``data/samples``) plus two seeded synthetics.

``data/samples/MANIFEST.toml`` lists each shipped file with its source.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = DATA / "samples"


def synthetic(kind: str, shape: tuple[int, int] = (256, 1024), seed: int = 0) -> np.ndarray:
    """Seeded float32 test tensors: ``gaussian`` (N(0, 1)) or ``student-t`` (3 dof)."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "student-t":
        return rng.standard_t(3, shape).astype(np.float32)
    raise ValueError(f"synthetic: unknown kind {kind!r}")


def sample_tensors() -> Iterator[tuple[str, np.ndarray, str]]:
    """(name, array, source) of every shipped sample tensor, then the two synthetics."""
    manifest = SAMPLES / "MANIFEST.toml"
    if manifest.is_file():
        doc = tomllib.loads(manifest.read_text())
        for name, entry in doc.get("sample", {}).items():
            yield name, np.load(SAMPLES / entry["file"], allow_pickle=False), entry["source"]
    yield "gaussian", synthetic("gaussian"), "synthetic N(0,1), numpy seed 0, 256x1024"
    yield "student-t", synthetic("student-t"), "synthetic Student-t (3 dof), seed 0, 256x1024"
