"""semdialect.torch.kernels (issue 14): the torch quantize kernels equal the golden model bit
for bit — codes, every metadata field, FP32 dequant bits, warnings and error messages — for
every format, behind a rotation, on random and adversarial tensors, in every input dtype.

The reference is ``golden.quantize.quantize`` / ``quantize_weights`` itself (imported, never
re-implemented here); FP16 rounding is checked exhaustively for bfloat16 and against NumPy's
direct float64 → float16 RNE near every kind of tie.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="semdialect.torch needs the torch extra (pip install 'semdialect[torch]')")

from semdialect.golden.formatbook import get_formatbook  # noqa: E402
from semdialect.golden.formats import FORMAT_NAMES, DialectFormat, resolve_format  # noqa: E402
from semdialect.golden.gemm import operand_formats  # noqa: E402
from semdialect.golden.quantize import quantize, quantize_weights  # noqa: E402
from semdialect.golden.rotated import rotated_format  # noqa: E402
from semdialect.golden.rotation import Rotation  # noqa: E402
from semdialect.paths import configs_dir  # noqa: E402
from semdialect.torch import kernels  # noqa: E402
from semdialect.torch.kernels import (  # noqa: E402
    fake_quantize,
    quantize_tensor,
    quantize_weight_tensor,
)

pytestmark = pytest.mark.torch

BOOKS = configs_dir() / "formatbooks"
SEED = 5  # rotation seed


def _formats() -> dict[str, tuple[object, int | None]]:
    """Every format under test: name → (format object, block or None for the default)."""
    out: dict[str, tuple[object, int | None]] = {n: (resolve_format(n), None)
                                                 for n in FORMAT_NAMES}
    out["dfp4-two-stage"] = (resolve_format("dfp4", select="two-stage"), None)
    out["sd32-b16"] = (resolve_format("sd32"), 16)
    out["dfp4-b64"] = (resolve_format("dfp4"), 64)
    out["int4-b16"] = (resolve_format("int4"), 16)
    out["int4-b24"] = (resolve_format("int4"), 24)  # any even B (no Hadamard: not 2^n)
    out["learned_k256"] = (DialectFormat(get_formatbook(str(BOOKS / "learned_k256.toml"))), None)
    out["learned_k8_b16"] = (
        DialectFormat(get_formatbook(str(BOOKS / "learned_k8_b16_hadamard.toml"))), 16)
    return out


FORMATS = _formats()
ROLES = (None, "activation", "weight")


def fmt_for(name: str, role: str | None):
    f, block = FORMATS[name]
    if role is None:
        return f, block
    return rotated_format(f, "hadamard", SEED, block, role=role), block


# -- comparison with golden -----------------------------------------------------------------
def _same_array(what: str, want: np.ndarray | None, got: np.ndarray | None) -> None:
    assert (want is None) == (got is None), what
    if want is None:
        return
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
    diff = np.flatnonzero(got.view(view) != want.view(view))  # bit patterns (-0.0 ≠ +0.0)
    assert diff.size == 0, (f"{what}: {diff.size} differ, first at flat {diff[0]}: "
                            f"{got.reshape(-1)[diff[0]]!r} vs golden {want.reshape(-1)[diff[0]]!r}")


def assert_same(want, t) -> None:
    got = t.to_golden()
    assert (got.format, got.block, got.bits_per_element, got.tensor_bits) == (
        want.format, want.block, want.bits_per_element, want.tensor_bits)
    for field in ("codes", "dequant", "rotated", "se", "dialect", "scale", "exp"):
        _same_array(field, getattr(want, field), getattr(got, field))
    _same_array("tensor_scale",
                None if want.tensor_scale is None else np.array([want.tensor_scale], np.float32),
                None if got.tensor_scale is None else np.array([got.tensor_scale], np.float32))
    assert got.rotation == want.rotation and got.role == want.role


def _run(fn):
    """(result or ValueError text, warning texts) of a call."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            res = fn()
        except ValueError as exc:
            res = f"ValueError: {exc}"
    return res, [f"{w.category.__name__}: {w.message}" for w in rec]


def check(x_golden, x_torch, fmt, block=None, **kw) -> bool:
    """quantize_tensor(x_torch) equals golden quantize(x_golden) (or raises its error);
    returns whether it was an error."""
    want, want_w = _run(lambda: quantize(x_golden, fmt, block=block, **kw))
    got, got_w = _run(lambda: quantize_tensor(x_torch, fmt, block=block, **kw))
    assert got_w == want_w
    if isinstance(want, str):
        assert got == want
        return True
    assert not isinstance(got, str), got
    assert_same(want, got)
    return False


# -- tensors --------------------------------------------------------------------------------
def random_tensors(k: int = 192) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    decades = np.ldexp(1.0, rng.integers(-30, 12, size=(12, 1)))
    return {
        "normal": rng.standard_normal((6, k)),
        "heavy": np.clip(rng.standard_cauchy((6, k)) * 3, -6e4, 6e4),
        "row-decades": np.clip(rng.standard_normal((12, k)) * decades, -65504, 65504),
    }


def _fp16_values(bits: np.ndarray) -> np.ndarray:
    return bits.astype(np.uint16).view(np.float16).astype(np.float32)


def adversarial_rows(k: int = 192) -> dict[str, np.ndarray]:
    """Single adversarial patterns, one row each (as float32 of exact or midpoint values)."""
    rng = np.random.default_rng(2)
    ties_e2m1 = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 4.0], np.float32)
    fp16 = rng.standard_normal(k).astype(np.float16)
    up = np.nextafter(fp16, np.float16(np.inf)).astype(np.float32)
    mid = (fp16.astype(np.float32) + up) / 2  # exact FP16 ties in float32
    outlier = rng.standard_normal(k).astype(np.float32) * 1e-3
    outlier[::16] = 60000.0
    sign_zero = np.zeros(k, np.float32)
    sign_zero[1::2] = -0.0
    sign_zero[::7] = 1.0
    return {
        "zeros": np.zeros(k, np.float32),
        "neg-zeros": np.full(k, -0.0, np.float32),
        "signed-zeros": sign_zero,
        "max": np.resize(np.array([65504.0, -65504.0, 65504.0, 1.0], np.float32), k),
        "subnormal": _fp16_values(rng.integers(1, 0x400, k) | (rng.integers(0, 2, k) << 15)),
        "se-clamp": _fp16_values(rng.integers(0, 0x500, k)),  # max < 2^-13: SE = -16
        "flush": np.resize(np.array([2.0**-24, -(2.0**-24), 0.0, 2.0**-23], np.float32), k),
        "fp16-ties": mid,
        "e2m1-ties": np.resize(ties_e2m1 * 2.0**-3, k) * np.resize([1, -1, 1], k),
        "int-ties": np.resize(np.array([63.5, -0.5, 1.5, 2.5, 127.0, -126.5], np.float32), k),
        "outlier": outlier,
    }


def adversarial_matrix(k: int = 192) -> np.ndarray:
    rows = [r for name, r in adversarial_rows(k).items() if name != "max"]
    return np.stack(rows)


FORMAT_CASES = [(name, role) for name in FORMATS for role in ROLES
                if role is None or name != "int4-b24"]


def _ids(case) -> str:
    return f"{case[0]}-{case[1] or 'plain'}"


# -- bit-exact against golden ---------------------------------------------------------------
@pytest.mark.parametrize("case", FORMAT_CASES, ids=_ids)
def test_random_tensors_match_golden(case) -> None:
    f, block = fmt_for(*case)
    errors = {}
    for kind, x in random_tensors().items():
        x32 = x.astype(np.float32)
        errors[kind] = check(x32, torch.from_numpy(x32), f, block)
    assert not errors["normal"]  # values were compared, not only errors


@pytest.mark.parametrize("case", FORMAT_CASES, ids=_ids)
def test_adversarial_tensors_match_golden(case) -> None:
    f, block = fmt_for(*case)
    for x in adversarial_rows().values():  # each pattern alone (tensor-wide NVFP4 scale)
        x2 = x.reshape(1, -1)
        check(x2, torch.from_numpy(x2), f, block)
    m = adversarial_matrix()
    assert not check(m, torch.from_numpy(m), f, block)  # no rotation overflow: compared


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("case", [c for c in FORMAT_CASES if c[1] != "weight"], ids=_ids)
def test_input_dtypes_match_golden(case, dtype) -> None:
    f, block = fmt_for(*case)
    xs = list(random_tensors(192).values()) + [adversarial_matrix()]
    for x in xs:
        if dtype == "float16":
            xt = torch.from_numpy(x.astype(np.float16))
            xg = xt.numpy()
        elif dtype == "bfloat16":
            xt = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
            xg = xt.to(torch.float32).numpy()  # exact widening: golden rounds the same values
        else:
            xg = x.astype(np.float64) * (1 + 2.0**-30)  # off the float32 grid: double rounding
            xt = torch.from_numpy(xg)
        check(xg, xt, f, block)


def test_bfloat16_to_fp16_is_exact_rne_exhaustive() -> None:
    bits = np.arange(1 << 16, dtype=np.uint32)
    f32 = (bits << 16).view(np.float32)
    finite = np.isfinite(f32) & (np.abs(f32) < 65520)  # larger ones are rejected (tested below)
    xt = torch.from_numpy(f32[finite]).to(torch.bfloat16)
    got = kernels._to_fp16(xt, "x", 2).numpy()
    want = f32[finite].astype(np.float16)
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))


def test_float64_to_fp16_is_one_rne_near_ties() -> None:
    rng = np.random.default_rng(3)
    h = np.concatenate([rng.integers(0, 0x7BFF, 20000), np.arange(0, 0x7BFF, 7)])
    h = np.concatenate([h, h | 0x8000]).astype(np.uint16)
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).astype(np.uint16).view(np.float16).astype(np.float64)  # next magnitude up
    mid = (lo + hi) / 2
    eps = np.abs(hi - lo) * 2.0**-40
    x = np.concatenate([mid, mid + eps, mid - eps, lo + eps, hi - eps,
                        rng.standard_normal(5000) * 1e4, [65519.99999, -65519.99999, 1e-300]])
    got = kernels._to_fp16(torch.from_numpy(x), "x", 2).numpy()
    assert np.array_equal(got.view(np.uint16), x.astype(np.float16).view(np.uint16))


@pytest.mark.parametrize("name", ["sd32", "dfp4-two-stage", "mxfp4", "nvfp4", "int4",
                                  "nvfp4-4o6"])
def test_leading_dims_and_pad_match_golden(name) -> None:
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 3, 72)) * 5).astype(np.float32)
    for role in (None, "activation"):
        f, block = fmt_for(name, role)
        check(x, torch.from_numpy(x), f, block, pad=True)
        check(x[..., :64], torch.from_numpy(x[..., :64].copy()), f, block)
        strided = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 1, 0))).permute(2, 1, 0)
        check(x, strided, f, block, pad=True)
        check(x.astype(np.float16), strided.to(torch.float16), f, block, pad=True)
        check(x.astype(np.float64), strided.to(torch.float64), f, block, pad=True)


@pytest.mark.parametrize("case", [(n, r) for n in ("sd32", "dfp4", "learned_k256")
                                  for r in (None, "activation")], ids=_ids)
def test_seda_candidates_match_golden(case) -> None:
    f, block = fmt_for(*case)
    k_book = FORMATS[case[0]][0].formatbook.size
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((3, 4, 96)) * 3).astype(np.float32)
    masks = rng.random((3, 4, 3, k_book)) < 0.3
    masks[..., rng.integers(0, k_book)] = True  # every block keeps a candidate
    check(x, torch.from_numpy(x), f, block, candidates=masks)
    check(x, torch.from_numpy(x), f, block, candidates=torch.from_numpy(masks))
    check(x, torch.from_numpy(x), f, block, candidates=masks[0, 0, 0])  # one (K,) mask
    check(x, torch.from_numpy(x), f, block, candidates=masks[:, :1])  # broadcast over rows
    empty = masks.copy()
    empty[1, 2, 0] = False
    check(x, torch.from_numpy(x), f, block, candidates=empty)  # ValueError, same text
    check(x, torch.from_numpy(x), f, block, candidates=masks[:, :, :2])  # bad shape


def test_two_stage_rejects_candidates_like_golden() -> None:
    f = resolve_format("dfp4", select="two-stage")
    x = np.ones((2, 32), np.float32)
    check(x, torch.from_numpy(x), f, candidates=np.ones(16, bool))


# -- weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FORMATS))
def test_weights_match_golden_quantize_weights(name) -> None:
    f, block = FORMATS[name]
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((24, 192)) * np.ldexp(1.0, rng.integers(-8, 4, (24, 1))))
    w = w.astype(np.float32)  # (out, in) as nn.Linear stores it
    wt = torch.from_numpy(w)
    fw = operand_formats(f, block=block)[1]  # golden's W format: lut for dialect weights
    assert_same(quantize_weights(w.T, fw, block=block), quantize_weight_tensor(wt, f, block=block))
    if name != "dfp4-two-stage":
        assert fw is f
    else:
        assert fw.select == "lut"
    if name != "int4-b24":
        want = quantize_weights(w.T, fw, block=block, rotate="hadamard", rotate_seed=SEED)
        assert want.role == "weight"
        for role in ROLES[1:]:  # W is rotated in the weight role whatever fmt's role
            rf = rotated_format(f, "hadamard", SEED, block, role=role)
            assert_same(want, quantize_weight_tensor(wt, rf, block=block))


def test_weight_errors_match_golden() -> None:
    f = resolve_format("sd32")
    for w in (np.zeros((0, 32), np.float32), np.zeros((2, 3, 32), np.float32),
              np.full((2, 32), np.nan, np.float32), np.zeros((2, 40), np.float32)):
        want, _ = _run(lambda w=w: quantize_weights(w.transpose(), f))  # golden's W = w.T
        got, _ = _run(lambda w=w: quantize_weight_tensor(torch.from_numpy(w), f))
        assert isinstance(want, str) and got == want


def test_fake_quantize_is_the_dequant() -> None:
    x = torch.linspace(-3, 3, 256).reshape(4, 64)
    f = resolve_format("sd32")
    deq = fake_quantize(x, f)
    assert deq.dtype == torch.float32 and deq.shape == x.shape
    assert np.array_equal(deq.numpy().view(np.int32), quantize(x.numpy(), f).dequant.view(np.int32))


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_errors_match_golden(dtype) -> None:
    f = resolve_format("sd32")
    base = np.ones((3, 2, 64), np.float64)
    cases = []
    for val in (np.nan, np.inf, -np.inf, 70000.0, -65520.0, 1e39):
        x = base.copy()
        x[1, 1, 40] = val
        x[2, 0, 3] = val
        cases.append(x)
    cases += [np.zeros((0, 64)), np.zeros((3, 0)), np.ones((3, 40)), np.array(1.0)]
    for x in cases:
        with np.errstate(over="ignore"):
            xd = x.astype(dtype)
        for ff in (f, rotated_format(f, "hadamard", SEED)):
            check(xd, torch.from_numpy(xd), ff)
    # bfloat16: the overflow names the same (exactly widened) value
    x = np.ones((2, 64), np.float32)
    x[1, 33] = 1e6
    xb = torch.from_numpy(x).to(torch.bfloat16)
    check(xb.to(torch.float32).numpy(), xb, f)
    check(x, torch.from_numpy(x).to(torch.int32), f)  # integers round like golden


def test_rotation_overflow_and_block_errors_match_golden() -> None:
    x = np.full((2, 3, 32), 60000.0, np.float32)  # rotated sums exceed FP16
    for name in ("sd32", "mxfp4", "nvfp4", "int4"):
        for role in ("activation", "weight"):
            f, block = fmt_for(name, role)
            check(x.reshape(2, -1)[:, :96], torch.from_numpy(x.reshape(2, -1)[:, :96].copy()),
                  f, block)
    f = resolve_format("sd32")
    check(np.ones((2, 32), np.float32), torch.ones(2, 32), f, 48)  # bad block size
    check(np.ones((2, 32), np.float32), torch.ones(2, 32), resolve_format("mxfp4"), 16)
    with pytest.raises(ValueError, match="^format: expected a resolved golden BlockFormat"):
        quantize_tensor(torch.ones(2, 32), "sd32")
    with pytest.raises(ValueError, match="^rotate: the Hadamard size 32 must equal"):
        from semdialect.golden.rotated import RotatedFormat
        quantize_tensor(torch.ones(2, 32), RotatedFormat(resolve_format("int4"), Rotation(32)),
                        block=16)


# -- chunking -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,role", [("sd32", None), ("dfp4-two-stage", "activation"),
                                       ("nvfp4", None), ("nvfp4-4o6", "activation"),
                                       ("mxint8", None)])
def test_chunking_does_not_change_results(monkeypatch, name, role) -> None:
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((150, 256)) * np.ldexp(1.0, rng.integers(-20, 8, (150, 1))))
    x = x.astype(np.float32)
    f, block = fmt_for(name, role)
    want, want_w = _run(lambda: quantize(x, f, block=block))
    for chunk in (700, 5 * 256, 1 << 20):  # 2 rows / 21 rotated blocks, 5 rows, all rows
        monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", chunk)
        got, got_w = _run(lambda: quantize_tensor(torch.from_numpy(x), f, block=block))
        assert_same(want, got)
        assert got_w == want_w


def test_four_over_six_golden_resum_path_matches_golden(monkeypatch) -> None:
    """Blocks whose 4- and 6-scaled errors are (nearly) equal are decided by NumPy's einsum
    as golden sums them; force every block through that path."""
    monkeypatch.setattr(kernels, "_NEAR_TIE", float("inf"))
    f = resolve_format("nvfp4-4o6")
    for x in list(random_tensors(64).values()) + [adversarial_matrix()]:
        x32 = x.astype(np.float32)
        check(x32, torch.from_numpy(x32), f)


def test_bench_rows_report_every_peer() -> None:
    from semdialect.torch.bench import bench_rows, markdown_table

    rows = bench_rows(n=64, repeats=1)
    got = [(r["impl"], r["format"]) for r in rows]
    peers = [("torch", "sd32"), ("torch", "mxfp4"), ("torch", "nvfp4"),
             ("torch", "dfp4 two-stage"), ("torch", "sd32 (float16 input)"),
             ("golden-numpy", "sd32")]
    assert got in (peers, [("torchao", "mxfp4")] + peers)
    for r in rows:
        assert r["seconds"] > 0 and r["melem_s"] == pytest.approx(64 * 64 / r["seconds"] / 1e6)
    table = markdown_table(rows, 64)
    assert table.count("\n| ") == len(rows) + 1  # header + one line per row
    with pytest.raises(ValueError, match="^n: "):
        bench_rows(n=40)


def test_format_without_torch_kernel_uses_its_golden_encode() -> None:
    """A user's BlockFormat subclass has no torch kernel: its own golden encode runs."""
    from semdialect.golden.formats import MXFP4

    class HalfMX(MXFP4):  # dequant halved: visibly not the MXFP4 kernel's output
        name = "half-mx"

        def encode(self, xb, ctx, candidates=None, out=None):
            enc = super().encode(xb, ctx, candidates, out)
            return type(enc)(enc.codes, enc.dequant / 2, enc.meta)

    x = np.random.default_rng(9).standard_normal((4, 64)).astype(np.float32)
    f = HalfMX()
    assert not check(x, torch.from_numpy(x), f)
    assert not check(x, torch.from_numpy(x), rotated_format(f, "hadamard", SEED))
