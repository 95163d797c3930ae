"""Learned formatbooks (issue 13): golden.learn, the TOML writer and ``semdialect formatbook
learn``.

The oracle is golden's own quantize run exhaustively: every one of the 6435 legal dialects
as a one-dialect book over a small set of blocks (the per-block squared errors, computed
once per module), against which the learner's K = 1 result and its exact update step are
checked. The learned book must then drive golden, the RTL frontend (amaranth.sim) and the
cycle model unchanged.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_rtl_frontend_sim import rtl_block_quantize

from semdialect.cli import main
from semdialect.config import Config
from semdialect.golden import Formatbook, gemm, load_formatbook, quantize, sd32, sqnr_db
from semdialect.golden.formatbook import formatbook_toml, index_bits, write_formatbook
from semdialect.golden.learn import (
    CANDIDATE_COUNT,
    _Stats,
    book_error_sums,
    candidate_dialects,
    canonical_order,
    learn_formatbook,
)
from semdialect.golden.rotation import Rotation
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.sim.cycles import gemm_cycles
from semdialect.tb.frontend_ref import ref_frontend

B = 32


def _tiny(seed: int = 0, rows: int = 24) -> np.ndarray:
    """A few hundred FP16 blocks of mixed shapes: Gaussian, heavy-tailed, sparse, scaled."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, (rows, 8 * B)) * rng.lognormal(0, 2, (rows, 1))
    x[: rows // 3] = rng.standard_normal((rows // 3, 8 * B))
    x[rows // 3: rows // 2] *= rng.random((rows // 2 - rows // 3, 8 * B)) < 0.2
    return x.astype(np.float16)


@pytest.fixture(scope="module")
def exhaustive() -> tuple[np.ndarray, np.ndarray]:
    """(blocks (n, B) float16, noise (6435, n)): golden quantize's squared error of every
    block under every legal dialect as a one-dialect book."""
    blocks = _tiny().reshape(-1, B)
    noise = np.empty((CANDIDATE_COUNT, len(blocks)))
    ref = blocks.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, hu in enumerate(candidate_dialects()):
            d = ref - quantize(blocks, formatbook=Formatbook("c", hu[None]), block=B).dequant
            noise[i] = (d * d).sum(axis=1)
    return blocks, noise


def test_candidates_are_every_legal_dialect_once() -> None:
    cands = candidate_dialects()
    assert cands.shape == (CANDIDATE_COUNT, 8)
    want = {(0, *c) for c in itertools.combinations(range(1, 16), 7)}  # SPEC §1 by definition
    assert {tuple(int(v) for v in row) for row in cands} == want
    assert len(want) == 6435
    for i in range(0, CANDIDATE_COUNT, 256):  # legal and distinct per Formatbook's checks
        Formatbook("c", cands[i:i + 256])
    keys = [(int(r[-1]), tuple(int(v) for v in r)) for r in cands]
    assert keys == sorted(keys)


def test_k1_is_the_exhaustive_optimum(exhaustive) -> None:
    """K = 1: selection is trivial, so the learner must reach the global optimum of the real
    squared error among all 6435 dialects (by golden quantize)."""
    blocks, noise = exhaustive
    res = learn_formatbook([blocks.reshape(-1, 4 * B)], 1, iters=3)
    total = noise.sum(axis=1)
    best = total.min()
    signal, got = book_error_sums(blocks, res.book, block=B)
    assert got <= best * (1 + 1e-9)
    optimal = {tuple(int(v) for v in candidate_dialects()[i])
               for i in np.flatnonzero(total <= best * (1 + 1e-9))}
    assert tuple(int(v) for v in res.book.hu[0]) in optimal
    assert res.train_sqnr_db["calib[0]"] == pytest.approx(10 * np.log10(signal / best), abs=1e-9)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_update_step_is_exact_for_every_cluster(exhaustive, k: int) -> None:
    """For a partition of the blocks into K clusters, the per-cluster candidate errors the
    update step minimises equal golden quantize's squared error of that cluster (divided by
    the signal), for every candidate, so its argmin is the exhaustive optimum."""
    blocks, noise = exhaustive
    assign = np.random.default_rng(k).integers(0, k, len(blocks)).astype(np.uint8)
    stats = _Stats.of(blocks, np.zeros(len(blocks), np.intp), 1)
    err, weight = stats.cluster_errors(assign, k)
    signal = float((blocks.astype(np.float64) ** 2).sum())
    for f in range(k):
        brute = noise[:, assign == f].sum(axis=1) / signal
        np.testing.assert_allclose(err[f], brute, rtol=1e-9, atol=1e-15)
        assert brute[np.argmin(err[f])] <= brute.min() * (1 + 1e-9)
    assert (weight > 0).all()


@pytest.mark.parametrize("k", [2, 3, 4])
def test_small_books_beat_their_start_and_are_canonical(exhaustive, k: int) -> None:
    blocks, noise = exhaustive
    x = blocks.reshape(-1, 4 * B)
    start = Formatbook("start", candidate_dialects()[[0, 1000, 3000, 6434][:k]])
    res = learn_formatbook([x], k, init=start)
    s, n_start = book_error_sums(x, start, block=B)
    _, n_learned = book_error_sums(x, res.book, block=B)
    assert n_learned <= n_start
    assert res.book.size == k and res.book.variants == 1
    assert canonical_order(res.book.hu).tolist() == list(range(k))
    # no K-dialect book can beat every block's own best dialect (a lower bound)
    assert n_learned >= noise.min(axis=0).sum() * (1 - 1e-12)


def test_k32_is_no_worse_than_sd32_and_deterministic() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_t(4, (32, 512)) * rng.lognormal(0, 1, (32, 1))).astype(np.float32)
    a = learn_formatbook({"x": x}, 32, iters=3, max_blocks=300, seed=3)
    b = learn_formatbook({"x": x}, 32, iters=3, max_blocks=300, seed=3)
    assert a.sampled_blocks <= 301 < a.nonzero_blocks
    assert np.array_equal(a.book.hu, b.book.hu)
    assert a.train_sqnr_db == b.train_sqnr_db
    # the balanced objective on the sample: the best book seen, sd32 (iteration 0) included
    assert a.balanced_sqnr_db >= a.history[0].balanced_sqnr_db
    sub = learn_formatbook({"x": x}, 32, iters=0, max_blocks=300, seed=3, init="sd32")
    assert sub.history[0].balanced_sqnr_db == a.history[0].balanced_sqnr_db
    assert np.array_equal(np.sort(sub.book.hu.view("u8").ravel()),
                          np.sort(sd32().hu.view("u8").ravel()))
    # on the whole tensor too (it is the training data)
    full = learn_formatbook({"x": x}, 32, iters=3)
    assert full.train_sqnr_db["x"] >= sqnr_db(x, quantize(x, "sd32").dequant)


def test_larger_books_start_from_sd32_and_refinement_only_improves() -> None:
    x = _tiny(6).astype(np.float32)
    res = learn_formatbook([x], 40, iters=4)
    assert res.init == "sd32 + greedy" and res.book.size == 40
    start = learn_formatbook([x], 40, iters=0).book  # sd32 plus 8 greedy dialects
    assert {r.tobytes() for r in sd32().hu} < {r.tobytes() for r in start.hu}
    phases = [r.phase for r in res.history]
    assert phases[0] == "init" and set(phases[1:]) <= {"lloyd", "refine"}
    refine = [r.balanced_sqnr_db for r in res.history if r.phase == "refine"]
    assert all(b > a for a, b in zip(refine, refine[1:], strict=False))
    assert res.balanced_sqnr_db == max(r.balanced_sqnr_db for r in res.history)
    assert res.balanced_sqnr_db == res.history[res.best_iteration].balanced_sqnr_db
    greedy = learn_formatbook([x], 40, iters=0, init="greedy")
    assert greedy.init == "greedy"


def test_fewer_blocks_than_dialects_still_gives_k_distinct_dialects() -> None:
    x = np.zeros((4, B), np.float32)
    x[0, :4] = [1, 2, 3, 4]
    x[1, 0] = -0.5
    res = learn_formatbook([x], 16, iters=3)
    assert res.book.size == 16 and res.nonzero_blocks == 2
    assert res.train_sqnr_db["calib[0]"] == float("inf")  # two blocks, each fitted exactly


def test_rotated_learning_reports_the_rotated_pipeline() -> None:
    x = _tiny(3).astype(np.float32)
    rot = Rotation(B)
    res = learn_formatbook([x], 8, rotate=rot, iters=3)
    want = sqnr_db(x, quantize(x, formatbook=res.book, block=B, rotate=rot).dequant)
    assert res.train_sqnr_db["calib[0]"] == pytest.approx(want, abs=1e-9)
    plain = sqnr_db(x, quantize(x, formatbook=res.book, block=B).dequant)
    assert plain != pytest.approx(want, abs=1e-6)  # the rotation is really applied


@pytest.mark.parametrize(
    ("kwargs", "calib", "message"),
    [
        ({"k": 0}, None, "^k: "),
        ({"k": 257}, None, "^k: "),
        ({"k": True}, None, "^k: "),
        ({"k": 4, "iters": -1}, None, "^iters: "),
        ({"k": 4, "init": "sd32"}, None, "^init: "),
        ({"k": 4, "block": 24}, None, "^block: "),
        ({"k": 4}, np.full((2, 64), np.nan), r"^calib\[0\]: NaN/Inf in block \(0, 0\)"),
        ({"k": 4}, np.ones((2, 40)), r"^calib\[0\]: shape \(2, 40\)"),
        ({"k": 4}, np.float32(1), r"^calib\[0\]: shape \(\)"),
        ({"k": 4}, np.array(["a"]), r"^calib\[0\]: expected a numeric array"),
        ({"k": 4}, np.zeros((2, 32)), r"^calib\[0\]: shape \(2, 32\): all zeros"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, calib, message: str) -> None:
    data = [np.ones((2, 64)) if calib is None else calib]
    with pytest.raises(ValueError, match=message):
        learn_formatbook(data, **kwargs)


@pytest.mark.parametrize("book", ["learned", "sd32", "dfp4", "odd"])
def test_toml_round_trip(tmp_path: Path, book: str) -> None:
    if book == "learned":
        fb = learn_formatbook([_tiny(1)], 5, iters=2).book
    elif book == "odd":
        fb = Formatbook('we"ird\\ näme\x7f', candidate_dialects()[[7, 3, 100]])
    else:
        from semdialect.golden import get_formatbook
        fb = get_formatbook(book)
    path = tmp_path / "b.toml"
    write_formatbook(fb, path, comments=["made by a test", "two\nlines\x01"])
    back = load_formatbook(path)
    assert (back.name, back.variants) == (fb.name, fb.variants)
    assert np.array_equal(back.hu, fb.hu)
    assert path.read_text() == formatbook_toml(fb, ["made by a test", "two\nlines\x01"])
    assert path.read_text().startswith("# made by a test\n# two\n# lines?\n")


def test_learned_book_drives_golden_rtl_and_cycle_model(tmp_path: Path) -> None:
    x = _tiny(2).astype(np.float32)
    book = learn_formatbook([x.reshape(-1, 16)], 4, block=16, iters=3).book
    path = tmp_path / "learned4.toml"
    write_formatbook(book, path)
    cfg = Config(name="learned", formatbook=str(path), block=16, formats_per_cycle=2)
    assert cfg.book().size == 4 and np.array_equal(cfg.book().hu, book.hu)
    q = quantize(x, formatbook=str(path), block=16)
    assert q.bits_per_element == 4 + (5 + 2) / 16
    w = np.random.default_rng(0).standard_normal((x.shape[1], 8)).astype(np.float32)
    y = gemm(x, w, "sd32", formatbook=str(path), block=16)
    assert y.shape == (x.shape[0], 8) and np.isfinite(y).all()
    assert gemm_cycles(cfg, 24, 8, x.shape[1]) > 0
    bits = x.astype(np.float16).view(np.uint16).reshape(-1, 16)[::7][:12]
    masks = np.ones((len(bits), 4), bool)
    got, _, _ = rtl_block_quantize(BlockQuantizer(16, book, "lut", 2), bits, masks,
                                   p_idle=0.3, seed=1)
    want = ref_frontend(bits, masks, book, "lut")
    assert len(set(want.dialect.tolist())) >= 2  # several learned dialects exercised
    for name in ("codes", "se", "dialect", "invalid"):
        assert np.array_equal(got[name], getattr(want, name)), name


# -- CLI -----------------------------------------------------------------------------------


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    status = main(["formatbook", "learn", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_learns_writes_and_reports_holdout(tmp_path: Path, capsys) -> None:
    fit, held = tmp_path / "fit.npy", tmp_path / "held.npy"
    np.save(fit, _tiny(4).astype(np.float32))
    np.save(held, _tiny(5).astype(np.float32))
    out = tmp_path / "sub" / "book.toml"
    status, stdout, stderr = _run(capsys, [str(fit), "-o", str(out), "--dialects", "8",
                                           "--iters", "3", "--holdout", str(held),
                                           "--name", "mine"])
    assert status == 0, stderr
    book = load_formatbook(out)
    assert (book.name, book.size, book.variants) == ("mine", 8, 1)
    res = learn_formatbook({str(fit): np.load(fit)}, 8, iters=3, name="mine")
    assert np.array_equal(book.hu, res.book.hu)  # the CLI is the library call
    assert f"train SQNR {res.train_sqnr_db[str(fit)]:.3f} dB" in stdout
    assert f"holdout {held}" in stdout and "sd32" in stdout and "dfp4" in stdout
    assert "iteration 0" in stderr
    assert "learn_formatbook(calib, 8, block=32" in out.read_text()


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        (lambda d: np.full((2, 64), np.nan), ["-k", "4"], "NaN/Inf in block (0, 0)"),
        (lambda d: np.ones((3, 33)), ["-k", "4"], "shape (3, 33)"),
        (lambda d: np.float32(2), ["-k", "4"], "shape ()"),
        (lambda d: np.array([True, False]), ["-k", "4"], "numeric"),
        (lambda d: np.ones((2, 64)), ["-k", "0"], "--dialects"),
        (lambda d: np.ones((2, 64)), ["-k", "300"], "--dialects"),
        (lambda d: np.ones((2, 64)), ["-k", "4", "--init", "sd32"], "--init"),
        (lambda d: np.ones((2, 64)), ["-k", "4", "--holdout", "MISSING"], "MISSING"),
        (lambda d: np.ones((2, 64)), ["-k", "4", "--out-is-input"], "refusing to overwrite"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path: Path, capsys, make,
                                                          args: list[str], needle: str) -> None:
    src = tmp_path / "calib.npy"
    np.save(src, make(tmp_path))
    out = tmp_path / "book.toml"
    if "--out-is-input" in args:
        args, out = [a for a in args if a != "--out-is-input"], src
    args = [str(tmp_path / a) if a == "MISSING" else a for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    status, stdout, stderr = _run(capsys, [str(src), "-o", str(out), *args])
    assert status == 2
    assert stderr.count("\n") == 1 and "error" in stderr and needle in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert stdout == ""


def test_cli_help_explains_learn(capsys) -> None:
    assert main(["formatbook", "learn", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("6435", "LUT selection", "--dialects", "--holdout", "ascending by (max",
                   "default 25"):
        assert needle in text, needle


@pytest.mark.parametrize(("name", "k", "block", "bits"), [
    ("learned_k256", 256, 32, "4.4062"), ("learned_k256_hadamard", 256, 32, "4.4062"),
    ("learned_k8_b16_hadamard", 8, 16, "4.5")])
def test_shipped_learned_books(name: str, k: int, block: int, bits: str) -> None:
    from semdialect.paths import configs_dir

    path = configs_dir() / "formatbooks" / f"{name}.toml"
    book = load_formatbook(path)
    assert (book.name, book.size, book.variants, book.id_bits) == (name, k, 1, index_bits(k))
    assert canonical_order(book.hu).tolist() == list(range(k))
    header = path.read_text().split("\nname =")[0]
    assert "write_shipped_book(path, " in header and "seed=0" in header
    assert "held out" in header and f"{bits} bits/element" in header
    assert f"B={block}" in header
    cfg = Config(name="learned", formatbook=str(path), formats_per_cycle=min(k, 32),
                 block=block)
    assert cfg.book().size == k
