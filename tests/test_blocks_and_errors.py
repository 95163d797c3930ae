"""Input checks (SPEC §2, §8 errors), padding and nibble packing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from semdialect.cli import main as cli_main
from semdialect.evaluation.compare import error_rows
from semdialect.golden import pack_nibbles, quantize, quantize_weights, unpack_nibbles
from semdialect.golden.blocks import to_fp16


def test_nan_inf_names_first_block_in_row_major_order() -> None:
    x = np.ones((2, 3, 64), np.float32)
    x[1, 2, 5] = np.nan
    x[1, 0, 63] = -np.inf
    with pytest.raises(ValueError, match=r"^t: NaN/Inf in block \(1, 0, 1\)$"):
        quantize(x, "sd32", name="t")


def test_overflow_is_reported_before_nan() -> None:
    x = np.ones((2, 64), np.float64)
    x[0, 0] = np.nan
    x[1, 40] = 70000.0
    with pytest.raises(ValueError, match=r"outside the FP16 range"):
        quantize(x, "dfp4")
    x[1, 40] = 65519.0  # rounds to 65504: fine
    x[0, 0] = 1.0
    assert quantize(x, "dfp4").se.max() == 13


def test_rounding_to_fp16_is_direct_rne() -> None:
    # 1 + 2^-11 + 2^-40: a float64 value that double rounding through float32 would get wrong
    v = 1 + 2.0**-11 + 2.0**-40
    x16 = to_fp16(np.full((1, 32), v), "x", 32)
    assert x16[0, 0] == np.float16(1 + 2.0**-10)
    assert np.float16(np.float32(v)) == np.float16(1.0)  # the double-rounded answer


def test_block_length_and_padding() -> None:
    x = np.arange(1, 41, dtype=np.float32).reshape(1, 40) / 7
    with pytest.raises(ValueError, match="not a multiple of the block size 32"):
        quantize(x, "sd32")
    for fmt in ("sd32", "dfp4", "mxfp4", "mxint8", "nvfp4", "int4"):
        q = quantize(x, fmt, pad=True)
        b = q.block
        padded = np.zeros((1, -(-40 // b) * b), np.float32)
        padded[:, :40] = x
        ref = quantize(padded, fmt)
        assert q.codes.shape == x.shape and q.dequant.shape == x.shape
        assert np.array_equal(q.codes, ref.codes[:, :40])
        assert np.array_equal(q.dequant, ref.dequant[:, :40])
        meta = q.se if q.se is not None else q.scale
        assert meta.shape == (1, -(-40 // b))


def test_bad_arguments() -> None:
    x = np.ones((2, 32))
    with pytest.raises(ValueError, match="format"):
        quantize(x, "fp8")
    with pytest.raises(ValueError, match="select"):
        quantize(x, "sd32", select="greedy")
    with pytest.raises(ValueError, match="select"):
        quantize(x, "mxfp4", select="two-stage")
    with pytest.raises(ValueError, match="block"):
        quantize(x, "sd32", block=8)
    with pytest.raises(ValueError, match="numeric"):
        quantize(np.array([["a"] * 32]), "sd32")
    with pytest.raises(ValueError, match="at least one element"):
        quantize(np.float32(1.0), "sd32")
    with pytest.raises(ValueError, match="2-D"):
        quantize_weights(np.ones(32), "sd32")


def test_integer_inputs_round_once() -> None:
    x = np.arange(-16, 16, dtype=np.int32).reshape(1, 32) * 1000
    q = quantize(x, "mxint8")
    assert q.dequant.shape == (1, 32)
    with pytest.raises(ValueError, match="outside the FP16 range"):
        quantize(x * 100, "mxint8")


def test_nibble_packing_order_and_roundtrip(rng) -> None:
    codes = rng.integers(0, 16, (3, 64)).astype(np.uint8)
    packed = pack_nibbles(codes)
    assert packed.shape == (3, 32)
    assert packed[1, 5] == codes[1, 10] | (codes[1, 11] << 4)
    assert np.array_equal(unpack_nibbles(packed), codes)
    with pytest.raises(ValueError, match="4-bit"):
        pack_nibbles(quantize(np.ones((1, 32)) * -3, "mxint8").codes)
    with pytest.raises(ValueError, match="even"):
        pack_nibbles(codes[:, :3])


ALL_FORMATS = ("sd32", "dfp4", "mxfp4", "mxint8", "nvfp4", "int4")


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("shape", [(0, 32), (0,), (2, 0), (0, 0), (3, 0, 64), (2, 3, 0)])
@pytest.mark.parametrize("pad", [False, True])
def test_quantize_rejects_empty_tensors(fmt: str, shape: tuple[int, ...], pad: bool) -> None:
    """An empty tensor is one ValueError naming the tensor and its shape (no inf/nan)."""
    with pytest.raises(ValueError, match=rf"^t: .*empty.*{re.escape(str(shape))}") as info:
        quantize(np.zeros(shape, np.float16), fmt, pad=pad, name="t")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("shape", [(0, 4), (32, 0), (0, 0)])
def test_quantize_weights_rejects_empty_w(shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=rf"^W: .*empty.*{re.escape(str(shape))}"):
        quantize_weights(np.zeros(shape, np.float32), "sd32")


@pytest.mark.parametrize("shape", [(0, 32), (4, 0), (0,)])
def test_error_table_rejects_empty_tensors(shape: tuple[int, ...]) -> None:
    """``semdialect error``'s rows: ValueError, not inf/nan rows."""
    with pytest.raises(ValueError, match=rf"^e\.npy: .*empty.*{re.escape(str(shape))}"):
        list(error_rows(np.zeros(shape, np.float32), name="e.npy"))


def test_cli_error_on_empty_tensor_is_one_line(tmp_path, capsys) -> None:
    p = tmp_path / "e.npy"
    np.save(p, np.zeros((0, 32), np.float32))
    assert cli_main(["error", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "empty" in err and "(0, 32)" in err
    assert cli_main(["gemm", str(p), str(p), "-o", str(tmp_path / "y.npy")]) == 2
    assert not (tmp_path / "y.npy").exists()
