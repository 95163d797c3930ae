"""Regenerate ``data/video/vtest_frames.npz`` (real video frames for ``golden.video``).

Source: ``vtest.avi`` (OpenCV's sample clip of pedestrians: 795 frames, 768×576 colour, 10 fps,
MS-MPEG4v3) from Debian's ``opencv-doc`` package (checked with 4.6.0+dfsg-12). The fixture
keeps frames 0..15 (the first 16, 1.6 s), converted to grey and box-averaged 6×6 to 128×96
pixels (no crop), so that 8×8 patches give 16×12 = 192 tokens per frame and 3072 tokens for the
16-frame group (a float64 3072×3072 map is 75 MB). Storage: uint8, 196,608 bytes raw.

Exact commands (run from the repository root; the decoder is needed only here, never at test
time, where numpy alone loads the .npz)::

    apt-get update && apt-get install -y opencv-doc
    python3 -m venv /tmp/minilm-venv
    /tmp/minilm-venv/bin/pip install numpy opencv-python-headless==5.0.0.93
    /tmp/minilm-venv/bin/python data/video/make_fixture.py

Processing of each decoded frame (OpenCV returns 8-bit BGR):

1. grey = 0.299·R + 0.587·G + 0.114·B (ITU-R BT.601 luma weights), in float64;
2. box average over non-overlapping 6×6 pixel blocks (576×768 -> 96×128), in float64;
3. round half to even (``np.rint``) to uint8.

The .npz holds ``frames`` (uint8, (16, 96, 128)) and the metadata below; strings are NumPy
unicode scalars so ``np.load(path, allow_pickle=False)`` reads everything. ``frames_sha256`` is
the sha256 of ``frames.tobytes()``; another decoder or version may differ from the stored
frames by a few grey levels (MPEG-4 IDCTs are not bit-exact), which that hash would show.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np

SOURCE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
OUT = Path(__file__).resolve().parent / "vtest_frames.npz"
FIRST_FRAME = 0
NUM_FRAMES = 16
DOWNSAMPLE = 6  # box-average factor along both axes
LUMA_RGB = (0.299, 0.587, 0.114)  # ITU-R BT.601


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def debian_package(name: str = "opencv-doc") -> str:
    """``name version`` of an installed Debian package, or just ``name`` if dpkg cannot tell."""
    try:
        query = ["dpkg-query", "-W", "-f=${Version}", name]
        version = subprocess.run(query, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return name
    return f"{name} {version}".strip()


def to_grey_small(bgr: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (H/factor, W/factor) uint8 grey: BT.601 luma, box mean, RNE."""
    height, width, _ = bgr.shape
    if height % factor or width % factor:
        raise ValueError(f"frame {width}x{height} is not a multiple of {factor}")
    rgb = bgr[..., ::-1].astype(np.float64)
    grey = rgb @ np.asarray(LUMA_RGB)
    small = grey.reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))
    return np.rint(small).astype(np.uint8)


def decode_frames(source: Path, first: int, count: int) -> np.ndarray:
    """Frames ``first .. first+count-1`` of a video as (count, H, W, 3) uint8 BGR."""
    import cv2  # only needed to regenerate the fixture

    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open {source} (apt-get install -y opencv-doc)")
    frames = []
    try:
        for index in range(first + count):
            ok, frame = capture.read()
            if not ok:
                raise ValueError(f"{source} ended at frame {index}")
            if index >= first:
                frames.append(frame)
    finally:
        capture.release()
    return np.stack(frames)


def main() -> None:
    """Decode, convert, and write the .npz (prints its path, size and frame hash)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import cv2

    try:
        wheel = f"opencv-python-headless {metadata.version('opencv-python-headless')}"
    except metadata.PackageNotFoundError:
        wheel = "cv2"
    bgr = decode_frames(args.source, FIRST_FRAME, NUM_FRAMES)
    frames = np.stack([to_grey_small(frame, DOWNSAMPLE) for frame in bgr])
    np.savez_compressed(
        args.out,
        frames=frames,
        frame_indices=np.arange(FIRST_FRAME, FIRST_FRAME + NUM_FRAMES, dtype=np.int64),
        source=np.str_(
            f"{args.source.name} from Debian package {debian_package()} ({args.source})"
        ),
        source_sha256=np.str_(sha256_file(args.source)),
        source_shape=np.asarray(bgr.shape[1:3], dtype=np.int64),  # (H, W) pixels
        crop=np.asarray([0, bgr.shape[1], 0, bgr.shape[2]], dtype=np.int64),  # top, bottom, l, r
        downsample=np.int64(DOWNSAMPLE),
        grey=np.str_("BT.601 luma 0.299 R + 0.587 G + 0.114 B, float64, then box mean, rint"),
        decoder=np.str_(f"{wheel} (cv2 {cv2.__version__}) VideoCapture"),
        frames_sha256=np.str_(hashlib.sha256(frames.tobytes()).hexdigest()),
    )
    print(args.out, args.out.stat().st_size, "bytes", frames.shape, frames.dtype)


if __name__ == "__main__":
    main()
