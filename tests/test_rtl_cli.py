"""``semdialect rtl-gemm`` / ``rtl-quantize``: a user's tensors through the generated RTL on
Verilator give the same files as the golden ``semdialect gemm`` / ``quantize``.

The reference is the golden command run on the same ``.npy`` files with the configuration's
format, formatbook, select and block; outputs must be identical byte for byte. Data: random
rows over many scales, FP16 round-to-nearest-even ties in the inputs, and every adversarial
block of :func:`semdialect.tb.frontend_ref.frontend_vectors` except NaN/Inf (zeros, −0,
±65504, subnormals, powers of two, LUT tie points, outliers), with weights holding zero, −0
and ±65504 columns. Configurations: ``small`` (2×2, B = 16, dfp4 lut) and a 2×2 B = 32 sd32
core at K = 288 (nine blocks: beyond the old fixed limit of 256) with one quantizer lane and
two outputs per drain beat (``small``: two lanes, a whole tile per beat). Builds are cached in
``build/`` (a first run adds about 1 min of Verilator builds; cached, about 20 s in all).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.lib import data

from semdialect.cli import main
from semdialect.config import Config, load_config
from semdialect.rtl.layouts import drain_beat, gemm_command, quantized_block
from semdialect.tb.frontend_ref import frontend_vectors
from semdialect.tb.packing import LayoutCodec

REPO = Path(__file__).resolve().parents[1]
SMALL_TOML = REPO / "configs" / "small.toml"
SMALL = load_config(SMALL_TOML)

#: the B = 32 configuration (written to a TOML per test; its name keeps the builds cached)
B32_TOML = """name = "cli_b32"
[array]
rows = 2
cols = 2
drain_width = 2
[format]
block = 32
formatbook = "sd32"
select = "lut"
[selector]
formats_per_cycle = 8
[frontend]
lanes = 1
"""

FP16_MAX = 65504.0


def _golden_format_args(cfg: Config) -> list[str]:
    return ["--format", cfg.formatbook, "--select", cfg.select, "--block", str(cfg.block)]


def _b32(tmp_path: Path) -> tuple[Path, Config]:
    path = tmp_path / "cli_b32.toml"
    path.write_text(B32_TOML)
    return path, load_config(path)


def adversarial_blocks(cfg: Config, seed: int) -> np.ndarray:
    """Every finite adversarial block of the frontend's vector set, (n, B) float32."""
    vs = frontend_vectors(cfg.book(), cfg.block, cfg.select, 0, seed)
    keep = np.array([label != "nan_inf" for label in vs.labels])
    return vs.bits[keep].view(np.float16).astype(np.float32)


def rne_ties(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values exactly halfway between two adjacent FP16 numbers (both parities), and
    65519 (rounds down to 65504), as float32: the FP16 rounding must be RNE."""
    bits = rng.integers(0x0400, 0x7BFF, n).astype(np.uint16)
    lo = bits.view(np.float16).astype(np.float64)
    hi = (bits + 1).view(np.float16).astype(np.float64)
    ties = ((lo + hi) / 2) * rng.choice([-1.0, 1.0], n)
    ties[0] = 65519.0
    return ties.astype(np.float32)


def activations(cfg: Config, kb: int, seed: int) -> np.ndarray:
    """X (rows, kb·B) float32: every adversarial block, random rows over many scales, a row
    of RNE ties; the rows filled up with random blocks."""
    rng = np.random.default_rng(seed)
    b = cfg.block
    blocks = list(adversarial_blocks(cfg, seed))
    blocks += list(rng.standard_normal((4 * kb, b)) * np.exp2(rng.integers(-14, 12, (4 * kb, 1))))
    ties = rne_ties(rng, kb * b)
    blocks += list(ties.reshape(kb, b))
    while len(blocks) % kb:
        blocks.append(rng.standard_normal(b))
    x = np.array(blocks, np.float32).reshape(-1, kb * b)
    return x[rng.permutation(len(x))]


def weights(k: int, n: int, seed: int) -> np.ndarray:
    """W (k, n) float32: random columns of different scales, an all-zero, an all −0 and a
    ±65504 column."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)) * np.exp2(rng.integers(-8, 6, (1, n)))
    w[:, 1] = 0.0
    w[:, 2] = -0.0
    w[:, 3] = rng.choice([-FP16_MAX, FP16_MAX], k)
    return w.astype(np.float32)


def _same_npy(a: Path, b: Path) -> None:
    ya, yb = np.load(a), np.load(b)
    assert ya.dtype == yb.dtype and ya.shape == yb.shape
    bits = f"u{ya.dtype.itemsize}"  # compare bit patterns (-0.0, NaN payloads)
    bad = np.argwhere(ya.view(bits) != yb.view(bits))
    assert not len(bad), f"{len(bad)} of {ya.size} outputs differ, e.g. at {bad[:5].tolist()}"
    assert a.read_bytes() == b.read_bytes()


def _same_npz(a: Path, b: Path) -> None:
    za, zb = np.load(a), np.load(b)
    assert za.files == zb.files
    for key in zb.files:
        assert za[key].dtype == zb[key].dtype and za[key].shape == zb[key].shape, key
        assert za[key].tobytes() == zb[key].tobytes(), f"{key} differs"


def _gemm_both(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, cfg: Config,
               x: np.ndarray, w: np.ndarray, *extra: str) -> str:
    """Run rtl-gemm and gemm on the same files; compare; return rtl-gemm's stderr."""
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    rtl, gold = tmp_path / "y_rtl.npy", tmp_path / "y_gold.npy"
    files = [str(tmp_path / "x.npy"), str(tmp_path / "w.npy")]
    capsys.readouterr()
    assert main(["rtl-gemm", *files, "-o", str(rtl), "--config", config, *extra]) == 0
    err = capsys.readouterr().err
    assert main(["gemm", *files, "-o", str(gold), *_golden_format_args(cfg), *extra]) == 0
    _same_npy(rtl, gold)
    y = np.load(gold)
    if y.dtype == np.float32:  # FP16 output may overflow to ±inf (SPEC §5), equal in both
        assert np.isfinite(y).all()
    return err


def _quantize_both(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str,
                   cfg: Config, x: np.ndarray, *extra: str) -> str:
    np.save(tmp_path / "in.npy", x)
    rtl, gold = tmp_path / "q_rtl.npz", tmp_path / "q_gold.npz"
    capsys.readouterr()
    assert main(["rtl-quantize", str(tmp_path / "in.npy"), "-o", str(rtl), "--config", config,
                 *extra]) == 0
    err = capsys.readouterr().err
    assert main(["quantize", str(tmp_path / "in.npy"), "-o", str(gold),
                 *_golden_format_args(cfg), *extra]) == 0
    _same_npz(rtl, gold)
    return err


def test_rtl_gemm_small_matches_gemm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """small (2×2, B = 16): X with leading dimensions (rows of adversarial and random blocks),
    7 output columns (ragged tiles), then K = 40 with --pad (a short last block)."""
    x = activations(SMALL, 4, seed=1)  # K = 64
    x = x[: len(x) // 2 * 2].reshape(2, -1, 64)
    err = _gemm_both(tmp_path, capsys, str(SMALL_TOML), SMALL, x, weights(64, 7, seed=2))
    for stage in ("rtl-gemm: Verilog:", "rtl-gemm: Verilator:"):
        assert stage in err, err  # progress lines on stderr
    rng = np.random.default_rng(3)
    _gemm_both(tmp_path, capsys, "small", SMALL, rng.standard_normal((3, 40)),
               weights(40, 5, seed=4), "--pad")
    # the same with the FP32 result rounded once to FP16
    _gemm_both(tmp_path, capsys, "small", SMALL, rng.standard_normal((3, 40)),
               weights(40, 5, seed=4), "--pad", "--precision", "fp16")
    assert np.load(tmp_path / "y_rtl.npy").dtype == np.float16


def test_rtl_gemm_salient_matches_gemm(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--salient: the decomposed layer (SPEC §6) in two passes on the core (residual rows out
    of the frontend, then a GEMM with ``add``) equals golden's decomposed_linear bit for bit;
    small (2 lanes, whole-tile drain) and the B = 32 sd32 core."""
    rng = np.random.default_rng(21)
    x = activations(SMALL, 2, seed=22)[:9]
    np.save(tmp_path / "s.npy", np.array([8, 0, 3, 4]))
    _gemm_both(tmp_path, capsys, "small", SMALL, x, weights(x.shape[1], 5, seed=23),
               "--salient", str(tmp_path / "s.npy"))
    plain = tmp_path / "plain.npy"
    assert main(["gemm", str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o", str(plain),
                 *_golden_format_args(SMALL)]) == 0
    moved = np.flatnonzero((np.load(plain) != np.load(tmp_path / "y_rtl.npy")).any(axis=1))
    assert set(moved) <= {0, 3, 4, 8} and moved.size  # the residual changed salient rows only
    path, cfg = _b32(tmp_path)
    x = (rng.standard_normal((7, 64)) * np.exp2(rng.integers(-6, 6, (7, 1)))).astype(np.float16)
    np.save(tmp_path / "s.npy", np.array([6, 1]))
    _gemm_both(tmp_path, capsys, str(path), cfg, x, weights(64, 6, seed=24),
               "--salient", str(tmp_path / "s.npy"))


def test_rtl_gemm_k_beyond_256_at_b32(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """B = 32, sd32, K = 288 (nine blocks; the core's limits follow the request)."""
    path, cfg = _b32(tmp_path)
    x = activations(cfg, 9, seed=5)
    err = _gemm_both(tmp_path, capsys, str(path), cfg, x, weights(288, 5, seed=6))
    assert "K <= 512" in err, err  # the core was generated for max_kb = 16


def test_rtl_quantize_matches_quantize(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """small: every adversarial block and random ones, 3-D input with a short last block
    (--pad); B = 32 sd32: the same without padding."""
    rng = np.random.default_rng(7)
    blocks = adversarial_blocks(SMALL, 8)
    x = np.concatenate([blocks.reshape(-1), rne_ties(rng, 16 * 16),
                        rng.standard_normal(16 * 16) * 1e-3])
    x = x[: len(x) // 120 * 120].reshape(-1, 2, 60)  # K = 60: four blocks, the last short
    err = _quantize_both(tmp_path, capsys, "small", SMALL, x, "--pad")
    for stage in ("rtl-quantize: Verilog:", "rtl-quantize: Verilator:"):
        assert stage in err, err
    path, cfg = _b32(tmp_path)
    x = activations(cfg, 3, seed=9)
    _quantize_both(tmp_path, capsys, str(path), cfg, x)


def _nan_at(x: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    x = x.copy()
    x[index] = value
    return x


@pytest.mark.parametrize("case", ["x_nan", "w_inf", "x_fp16_range", "shapes", "k_not_multiple",
                                  "k_beyond_core", "output_is_input"])
def test_rtl_gemm_rejects_bad_input_before_building(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        case: str) -> None:
    """The golden gemm's checks and messages (exit 2, no output), and the core's K limit;
    nothing is generated or simulated."""
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the RTL was built for bad input")

    monkeypatch.setattr("semdialect.tb.gemm_run.run_gemm_arrays", refuse)
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((4, 64)), rng.standard_normal((64, 3))
    golden_agrees = True
    if case == "x_nan":
        x = _nan_at(x, (2, 37), np.nan)
    elif case == "w_inf":
        w = _nan_at(w, (17, 1), -np.inf)
    elif case == "x_fp16_range":
        x = _nan_at(x, (0, 5), 70000.0)
    elif case == "shapes":
        w = w[:48]
    elif case == "k_not_multiple":
        x, w = x[:, :40], w[:40]
    elif case == "k_beyond_core":  # 513 blocks of 16: golden computes it, the core cannot
        x, w = rng.standard_normal((1, 513 * 16)), rng.standard_normal((513 * 16, 1))
        golden_agrees = False
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "x.npy" if case == "output_is_input" else tmp_path / "y.npy"
    args = [str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o", str(out)]
    before = (tmp_path / "x.npy").read_bytes()
    capsys.readouterr()
    assert main(["rtl-gemm", *args, "--config", "small"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("semdialect rtl-gemm: error: ") and err.count("\n") == 1, err
    assert (tmp_path / "x.npy").read_bytes() == before
    if case != "output_is_input":
        assert not out.exists()
    if case == "k_beyond_core":
        assert "K = 8208" in err and "8192" in err, err
    elif golden_agrees:
        assert main(["gemm", *args, *_golden_format_args(SMALL)]) == 2
        gold = capsys.readouterr().err
        assert err.removeprefix("semdialect rtl-gemm") == gold.removeprefix("semdialect gemm")


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e6])
def test_rtl_quantize_rejects_bad_input_before_building(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        value: float) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the RTL was built for bad input")

    monkeypatch.setattr("semdialect.tb.frontend_run.run_quantizer_arrays", refuse)
    x = _nan_at(np.random.default_rng(11).standard_normal((3, 2, 32)), (1, 1, 20), value)
    np.save(tmp_path / "in.npy", x)
    out = tmp_path / "q.npz"
    capsys.readouterr()
    assert main(["rtl-quantize", str(tmp_path / "in.npy"), "-o", str(out), "--config",
                 "small"]) == 2
    err = capsys.readouterr().err
    assert main(["quantize", str(tmp_path / "in.npy"), "-o", str(out),
                 *_golden_format_args(SMALL)]) == 2
    gold = capsys.readouterr().err
    assert err.removeprefix("semdialect rtl-quantize") == gold.removeprefix("semdialect quantize")
    assert "block (1, 1, 1)" in err and not out.exists()


def test_rtl_commands_reject_a_bad_config(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 32)))
    assert main(["rtl-quantize", str(tmp_path / "x.npy"), "-o", str(tmp_path / "q.npz"),
                 "--config", "no-such-config"]) == 2
    assert "no-such-config" in capsys.readouterr().err


def test_layout_codec_packs_gemm_payloads() -> None:
    """``LayoutCodec.pack(count, /, **fields)``: a field may be called ``n`` or ``count`` (the
    GEMM command's ``n``), and struct-array lanes are ``<index>__<field>``; reference:
    Amaranth's own ``Layout.const``."""
    cmd = gemm_command(8, 8, 4)
    want = [cmd.const({"m": m, "n": n, "kb": kb}).as_value().value
            for m, n, kb in ((5, 7, 3), (255, 1, 8))]
    assert LayoutCodec(cmd).pack(2, m=[5, 255], n=[7, 1], kb=[3, 8]) == want
    count_layout = data.StructLayout({"count": 4, "n": 3})
    got = LayoutCodec(count_layout).pack(1, count=[9], n=[5])
    assert got == [count_layout.const({"count": 9, "n": 5}).as_value().value]

    beat = data.ArrayLayout(quantized_block(16, 16), 2)
    lanes = [{"codes": list(range(16)), "se": 3, "dialect": 2, "invalid": 0},
             {"codes": [15] * 16, "se": 29, "dialect": 15, "invalid": 1}]
    fields = {f"{c}__{name}": [lanes[c][name]] for c in range(2) for name in lanes[c]}
    assert LayoutCodec(beat).pack(1, **fields) == [beat.const(lanes).as_value().value]


def test_layout_codec_wide_fields() -> None:
    """A scalar field wider than an int64 (a 128-lane drain beat's ``mask``) packs and
    unpacks as a Python int; reference: Amaranth's ``Layout.const``."""
    beat = drain_beat(128)
    rng = np.random.default_rng(12)
    masks = [int(v) for v in rng.integers(0, 1 << 62, 3)]
    masks = [(v << 66) | (v >> 3) | 1 << 127 for v in masks]
    values = rng.integers(0, 1 << 32, (3, 128))
    fields = {f"lanes__{i}__value": values[:, i] for i in range(128)}
    codec = LayoutCodec(beat)
    words = codec.pack(3, mask=np.array(masks, dtype=object), last=[0, 1, 0], **fields)
    want = [beat.const({"lanes": [{"value": int(v), "invalid": 0} for v in values[j]],
                        "mask": masks[j], "last": j == 1}).as_value().value for j in range(3)]
    assert words == want
    back = codec.unpack(words)
    assert back["mask"].tolist() == masks and back["last"].tolist() == [0, 1, 0]
    assert np.array_equal(np.stack([back[f"lanes.{i}.value"] for i in range(128)], 1), values)
    bits = codec.unpack_bits(words, "mask")
    assert bits.shape == (3, 128)
    assert [sum(1 << int(i) for i in np.flatnonzero(row)) for row in bits] == masks
    with pytest.raises(ValueError, match="mask"):
        codec.pack(1, mask=np.array([1 << 128], dtype=object))



@pytest.mark.parametrize("content, extra, words", [
    (np.array([9]), [], "out of range"), (np.array([1, 1]), [], "distinct"),
    (np.array([1]), ["--pad"], "--pad"),
])
def test_rtl_gemm_bad_salient_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          content: np.ndarray, extra: list[str],
                                          words: str) -> None:
    np.save(tmp_path / "x.npy", np.ones((9, 16), np.float32))
    np.save(tmp_path / "w.npy", np.ones((16, 4), np.float32))
    np.save(tmp_path / "s.npy", content)
    capsys.readouterr()
    assert main(["rtl-gemm", str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o",
                 str(tmp_path / "y.npy"), "--config", "small", "--salient",
                 str(tmp_path / "s.npy"), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--salient" in err and words in err, err
    assert not (tmp_path / "y.npy").exists()
