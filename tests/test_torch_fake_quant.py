"""semdialect.torch.fake_quant: fake_quantize_ against the NumPy golden model (issue 14).

The oracle is the golden model itself (``golden.quantize`` / ``quantize_weights`` and the
decomposition functions), called here on the tensors the fake-quantized layers receive.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="semdialect.torch needs the torch extra "
                                            "(pip install 'semdialect[torch]')")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from semdialect.evaluation.hooks import Reference, Weights  # noqa: E402
from semdialect.evaluation.metrics import embedding_metrics  # noqa: E402
from semdialect.evaluation.sentences import stdlib_sentences  # noqa: E402
from semdialect.evaluation.study import minilm_variant  # noqa: E402
from semdialect.evaluation.variants import Variant  # noqa: E402
from semdialect.golden import FORMAT_NAMES, quantize, quantize_weights  # noqa: E402
from semdialect.golden.blocks import to_fp16  # noqa: E402
from semdialect.golden.decompose import (  # noqa: E402
    residual,
    residual_format,
    salient_tokens,
)
from semdialect.golden.selector_saliency import (  # noqa: E402
    err_saliency_quantized,
    err_salient_tokens,
    top_rows,
)
from semdialect.paths import configs_dir  # noqa: E402
from semdialect.torch.fake_quant import (  # noqa: E402
    FakeQuantLinear,
    fake_quantize_,
    remove_fake_quant_,
)

pytestmark = [pytest.mark.torch,
              # _input's block below the SE clamp is flushed on purpose (SPEC §2)
              pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")]

HEADS, SEQ, DIM = 2, 32, 64


class Block(nn.Module):
    """A small attention block: Q/K/V projections, QKᵀ and PV with torch.matmul, output
    projection and an MLP; records the attention matmuls' operands and results."""

    def __init__(self, sdpa: bool = False) -> None:
        super().__init__()
        self.attn = nn.ModuleDict({p: nn.Linear(DIM, DIM) for p in ("query", "key", "value")})
        self.out = nn.Linear(DIM, DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, 128), nn.GELU(), nn.Linear(128, 32))
        self.sdpa = sdpa
        self.seen: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (self.attn[p](x).reshape(b, n, HEADS, DIM // HEADS).transpose(1, 2)
                   for p in ("query", "key", "value"))
        self.seen.update(q=q, k=k, v=v)
        if self.sdpa:
            mixed = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(DIM // HEADS)
            p = torch.softmax(scores, dim=-1)
            mixed = p @ v
            self.seen.update(scores=scores, p=p)
        self.seen["mixed"] = mixed
        h = self.out(mixed.transpose(1, 2).reshape(b, n, DIM)) + x
        return self.mlp(h)


def _input(seed: int = 0) -> torch.Tensor:
    """(2, SEQ, DIM) activations with adversarial blocks: an all-zero block, -0.0, values near
    the FP16 limit and below the SE clamp, next to ordinary Gaussian values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, SEQ, DIM, generator=g) * 3
    x[0, 0, :32] = 0.0
    x[0, 1, :32] = -0.0
    x[0, 2, 5] = 60000.0
    x[1, 3, :32] = torch.randn(32, generator=g) * 2.0 ** -20
    x[1, 4, 7] = -1e-8
    return x


def _model(sdpa: bool = False, dtype: torch.dtype = torch.float32) -> Block:
    torch.manual_seed(1)
    m = Block(sdpa)
    m.out.weight.data[0, :32] = 0.0  # an all-zero weight block
    return m.to(dtype)


def _linears(m: nn.Module) -> dict[str, nn.Linear]:
    return {n: mod for n, mod in m.named_modules() if isinstance(mod, nn.Linear)}


def _capture(m: nn.Module) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(input, output) of every FakeQuantLinear call, by qualified name."""
    got: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for name, mod in m.named_modules():
        if isinstance(mod, FakeQuantLinear):
            mod.register_forward_hook(
                lambda _m, a, y, name=name: got.setdefault(name, []).append((a[0], y)))
    return got


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy()


FORMATS = [
    ("sd32", {}),
    ("sd32", {"rotate": "hadamard"}),
    ("dfp4", {"select": "two-stage"}),
    ("dfp4", {"block": 16}),
    ("mxfp4", {}),
    ("mxint8", {}),
    ("nvfp4", {}),
    ("nvfp4", {"rotate": "hadamard"}),
    ("int4", {}),
    ("nvfp4-4o6", {}),
    ("nvint4", {"rotate": "hadamard"}),
    ("sd32", {"formatbook": str(configs_dir() / "formatbooks" / "learned_k256.toml")}),
]


def test_every_golden_format_is_covered() -> None:
    assert {f for f, _ in FORMATS} == set(FORMAT_NAMES)


@pytest.mark.parametrize(("fmt", "opts"), FORMATS, ids=lambda v: str(v))
def test_weights_and_activations_equal_golden(fmt: str, opts: dict) -> None:
    m = _model()
    originals = {n: lin.weight.detach().clone() for n, lin in _linears(m).items()}
    summary = fake_quantize_(m, fmt, **opts)
    assert summary.count == 6 and "out" in str(summary)
    wopts = {k: v for k, v in opts.items() if k != "select"}  # weights: lut (SPEC §4)
    wdeq = {}
    for name, w in originals.items():
        layer = m.get_submodule(name)
        assert isinstance(layer, FakeQuantLinear)
        qw = quantize_weights(w.numpy().T, fmt, **wopts)
        assert np.array_equal(layer.weight.numpy(), qw.dequant)  # bit for bit (-0.0 too)
        assert np.array_equal(np.signbit(layer.weight.numpy()), np.signbit(qw.dequant))
        assert np.array_equal(layer.weight_codes.numpy(), qw.codes)
        wdeq[name] = torch.from_numpy(qw.dequant)
    seen = _capture(m)
    with torch.no_grad():
        m(_input())
    assert set(seen) == set(originals)
    for name, calls in seen.items():
        layer = m.get_submodule(name)
        for x, y in calls:
            qx = quantize(x.numpy(), fmt, **opts)
            got = layer.quantize_input(x)[0]
            assert np.array_equal(got.numpy(), qx.dequant)
            assert np.array_equal(np.signbit(got.numpy()), np.signbit(qx.dequant))
            want = F.linear(torch.from_numpy(qx.dequant), wdeq[name]) + layer.bias
            assert torch.equal(y, want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_model(dtype: torch.dtype) -> None:
    m = _model(dtype=dtype)
    originals = {n: lin.weight.detach().clone() for n, lin in _linears(m).items()}
    fake_quantize_(m, "sd32")
    seen = _capture(m)
    with torch.no_grad():
        out = m(torch.randn(2, SEQ, DIM).to(dtype))  # no 60000: the fp16 model would overflow
    assert out.dtype == dtype
    for name, w in originals.items():
        layer = m.get_submodule(name)
        qw = quantize_weights(_np(w).T, "sd32")
        assert np.array_equal(layer.weight.numpy(), qw.dequant)
        x, y = seen[name][0]
        qx = quantize(_np(x), "sd32")
        want = F.linear(torch.from_numpy(qx.dequant), torch.from_numpy(qw.dequant))
        assert torch.equal(y, (want + layer.bias.float()).to(dtype))


def _decomposed_expectation(x: torch.Tensor, salient: list[np.ndarray], opts: dict | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Golden: flat salient rows and their quantized residual (SPEC §6), sequence by sequence."""
    flat, res = [], []
    for s, sal in enumerate(salient):
        xs = to_fp16(x[s].numpy(), "x", 32)
        q = quantize(xs, "sd32", **(opts or {}))
        if sal.size:
            r = residual(xs[sal], q.take_rows(sal))
            res.append(quantize(r, residual_format(q, q.fmt)).dequant[:, :x.shape[-1]])
            flat.append(s * x.shape[1] + sal)
    return np.concatenate(flat), np.concatenate(res)


def _check_decomposed(m: Block, seen: dict, salient_of, opts: dict) -> None:  # noqa: ANN001
    for name, calls in seen.items():
        layer = m.get_submodule(name)
        for x, y in calls:
            flat, res = _decomposed_expectation(x, [salient_of(name, s, x[s])
                                                    for s in range(x.shape[0])], opts)
            main, rows, r = layer.quantize_input(x)
            assert np.array_equal(main.numpy(), quantize(x.numpy(), "sd32", **opts).dequant)
            assert np.array_equal(rows.numpy(), flat)
            assert np.array_equal(r.numpy(), res)
            want = F.linear(main, layer.weight).reshape(-1, layer.out_features)
            want[rows] = want[rows] + F.linear(r, layer.weight)
            assert torch.equal(y, want.reshape(y.shape) + layer.bias)


@pytest.mark.parametrize("opts", [{}, {"rotate": "hadamard"}], ids=["plain", "hadamard"])
def test_decomposition_err_saliency_equals_golden(opts: dict) -> None:
    m = _model()
    fake_quantize_(m, "sd32", rho="0.1", saliency="err", **opts)
    seen = _capture(m)
    with torch.no_grad():
        m(_input())

    def salient_of(name: str, s: int, xs: torch.Tensor) -> np.ndarray:
        if not opts:
            return err_salient_tokens(xs.numpy(), "0.1")
        q = quantize(xs.numpy(), "sd32", **opts)  # rotated: the scores of the rotated blocks
        return top_rows(err_saliency_quantized(xs.numpy(), q), "0.1")

    _check_decomposed(m, seen, salient_of, opts)


def test_decomposition_attention_map_equals_golden() -> None:
    g = torch.Generator().manual_seed(5)
    maps: dict[str, torch.Tensor] = {}

    def provider(fqn: str, module: nn.Module) -> torch.Tensor:
        # one dyadic random map (B, H, N, N) per layer: every summation order is exact (SPEC §6)
        if fqn not in maps:
            maps[fqn] = torch.randint(0, 64, (2, 3, SEQ, SEQ), generator=g).float() / 64
        return maps[fqn]

    m = _model()
    fake_quantize_(m, "sd32", rho=0.07, attention=provider)
    seen = _capture(m)
    with torch.no_grad():
        m(_input())
    assert maps.keys() == seen.keys()
    _check_decomposed(m, seen, lambda name, s, xs: salient_tokens(maps[name][s].numpy(),
                                                                  "0.07"), {})
    rows = m.get_submodule("out").quantize_input(seen["out"][0][0])[1]
    assert rows.numel() == 2 * math.ceil(0.07 * SEQ)  # ρ·N evaluated exactly: 3 per sequence


def _second(b: torch.Tensor, opts: dict) -> torch.Tensor:
    """Golden quantization of a run-time second operand b (..., k, n): Wᵀ's rows blocked along
    k, through quantize_weights (rotation's weight role, SPEC §6a/§11), slice by slice."""
    flat = b.detach().reshape(-1, *b.shape[-2:])
    out = [quantize_weights(s.numpy(), "sd32", **opts).dequant.T for s in flat]
    return torch.from_numpy(np.stack(out)).reshape(b.shape)


@pytest.mark.parametrize("opts", [{}, {"rotate": "hadamard"}], ids=["plain", "hadamard"])
def test_attention_matmuls_are_fake_quantized(opts: dict) -> None:
    m = _model()
    summary = fake_quantize_(m, "sd32", matmuls=True, **opts)
    with torch.no_grad():
        m(_input())
    s = m.seen
    q = torch.from_numpy(quantize(s["q"].numpy(), "sd32", **opts).dequant)
    kt = _second(s["k"].transpose(-1, -2), opts)
    want = torch.matmul(q, kt) / math.sqrt(DIM // HEADS)
    assert torch.equal(s["scores"], want)
    p = torch.from_numpy(quantize(s["p"].numpy(), "sd32", **opts).dequant)
    assert torch.equal(s["mixed"], torch.matmul(p, _second(s["v"], opts)))
    assert sum(summary.matmul_calls.values()) == 2  # QKᵀ and PV
    # outside the model's forward nothing is intercepted
    a = torch.randn(4, 32)
    assert torch.equal(a @ a.T, torch.matmul(a, a.T))
    remove_fake_quant_(m)
    with torch.no_grad():
        m(_input())
    assert sum(summary.matmul_calls.values()) == 2


def test_sdpa_is_fake_quantized() -> None:
    m = _model(sdpa=True)
    fake_quantize_(m, "sd32", matmuls=True)
    with torch.no_grad():
        m(_input())
    s = m.seen
    q = torch.from_numpy(quantize(s["q"].numpy(), "sd32").dequant)
    scores = torch.matmul(q, _second(s["k"].transpose(-1, -2), {})) / math.sqrt(DIM // HEADS)
    p = torch.softmax(scores, dim=-1)
    p_hat = torch.from_numpy(quantize(p.numpy(), "sd32").dequant)
    assert torch.equal(s["mixed"], torch.matmul(p_hat, _second(s["v"], {})))


def test_matmul_reduction_not_multiple_of_block() -> None:
    m = _model()
    fake_quantize_(m, "sd32", matmuls=True)
    with pytest.raises(ValueError, match=r"matmuls: .* reduces over 24 elements"):
        m(torch.randn(1, 24, DIM))
    m2 = _model()
    fake_quantize_(m2, "sd32", matmuls=True, pad=True)
    with torch.no_grad():
        m2(torch.randn(1, 24, DIM))
    p = m2.seen["p"]
    v = m2.seen["v"]
    p_hat = torch.from_numpy(quantize(p.numpy(), "sd32", pad=True).dequant)
    v_hat = torch.from_numpy(quantize(v.transpose(-1, -2).numpy(), "sd32", pad=True).dequant)
    assert torch.equal(m2.seen["mixed"], torch.matmul(p_hat, v_hat.transpose(-1, -2)))


def test_remove_and_filter() -> None:
    m = _model()
    x = _input()
    with torch.no_grad():
        y0 = m(x)
    before = dict(_linears(m))
    summary = fake_quantize_(m, "mxfp4", filter_fn=lambda mod, fqn: fqn.startswith("mlp"))
    assert [r.fqn for r in summary.replaced] == ["mlp.0", "mlp.2"]
    assert {s.fqn for s in summary.skipped} == {"attn.query", "attn.key", "attn.value", "out"}
    assert isinstance(m.mlp[0], FakeQuantLinear) and isinstance(m.out, nn.Linear)
    assert remove_fake_quant_(m) == 2
    assert all(m.get_submodule(n) is lin for n, lin in before.items())
    with torch.no_grad():
        assert torch.equal(m(x), y0)


def test_multihead_attention_out_proj_skipped() -> None:
    m = nn.Sequential(nn.Linear(32, 32), nn.MultiheadAttention(32, 2))
    summary = fake_quantize_(m, "sd32")
    assert [r.fqn for r in summary.replaced] == ["0"]
    assert [s.fqn for s in summary.skipped] == ["1.out_proj"]
    assert type(m[1].out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear


def test_shared_linear_replaced_everywhere() -> None:
    lin = nn.Linear(32, 32)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    summary = fake_quantize_(m, "sd32")
    assert summary.count == 1 and m[0] is m[2] and isinstance(m[0], FakeQuantLinear)


# ------------------------------------------------------------------------------------ errors
def _snapshot(m: nn.Module) -> tuple[dict, list]:
    return ({k: v.clone() for k, v in m.state_dict().items()},
            [(n, type(mod)) for n, mod in m.named_modules()])


def _unchanged(m: nn.Module, snap: tuple[dict, list]) -> bool:
    sd, types = snap
    now = m.state_dict()
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:  # bit for bit (NaN included)
        return a.dtype == b.dtype and a.shape == b.shape and (
            a.detach().numpy().tobytes() == b.detach().numpy().tobytes())

    return (list(now) == list(sd) and all(same(now[k], sd[k]) for k in sd)
            and [(n, type(mod)) for n, mod in m.named_modules()] == types)


class Nested(nn.Module):
    def __init__(self, inter_in: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(nn.Module() for _ in range(4))
        for i, layer in enumerate(self.encoder.layer):
            layer.intermediate = nn.Module()
            layer.intermediate.dense = nn.Linear(inter_in if i == 3 else 64, 64)


@pytest.mark.parametrize(("make", "kwargs", "match"), [
    (lambda: nn.Sequential(nn.ReLU(), nn.LayerNorm(8)), {}, r"^model: Sequential has no "
                                                           r"nn.Linear"),
    (lambda: Nested(48), {}, r"^encoder\.layer\.3\.intermediate\.dense: in_features 48 is "
                             r"not a multiple of the block size B = 32"),
    (lambda: Nested(), {"rho": 0.05}, r"^attention: rho > 0"),
    (lambda: Nested(), {"fmt": "nope"}, r"^format: unknown"),
    (lambda: Nested(), {"rho": 2}, r"^rho: must be in \[0, 1\]"),
    (lambda: Nested(), {"filter_fn": lambda mod, fqn: False}, r"^model: .*excluded by "
                                                              r"filter_fn"),
], ids=["no-linear", "in-features", "no-attention", "format", "rho", "filter-none"])
def test_bad_input_leaves_model_unchanged(make, kwargs, match) -> None:  # noqa: ANN001
    m = make()
    snap = _snapshot(m)
    with pytest.raises(ValueError, match=match):
        fake_quantize_(m, **kwargs)
    assert _unchanged(m, snap)


def test_int8_weight_names_the_layer() -> None:
    m = Nested()
    dense = m.encoder.layer[2].intermediate.dense
    dense.weight = nn.Parameter(torch.randint(-8, 8, (64, 64), dtype=torch.int8),
                                requires_grad=False)
    snap = _snapshot(m)
    with pytest.raises(ValueError, match=r"^encoder\.layer\.2\.intermediate\.dense: "
                                         r"unsupported weight dtype int8"):
        fake_quantize_(m)
    assert _unchanged(m, snap)


def test_failure_midway_leaves_model_unchanged() -> None:
    m = Nested()
    with torch.no_grad():
        m.encoder.layer[3].intermediate.dense.weight[5, 40] = float("nan")
    snap = _snapshot(m)
    with pytest.raises(ValueError, match=r"^encoder\.layer\.3\.intermediate\.dense: W of "
                                         r"encoder\.layer\.3\.intermediate\.dense.*NaN"):
        fake_quantize_(m, "nvfp4")
    assert _unchanged(m, snap)


def test_pad_quantizes_short_last_block() -> None:
    m = Nested(48)
    w = m.encoder.layer[3].intermediate.dense.weight.detach().clone()
    fake_quantize_(m, pad=True)
    layer = m.encoder.layer[3].intermediate.dense
    assert np.array_equal(layer.weight.numpy(),
                          quantize_weights(w.numpy().T, "sd32", pad=True).dequant)
    x = torch.randn(3, 48)
    assert np.array_equal(layer.quantize_input(x)[0].numpy(),
                          quantize(x.numpy(), "sd32", pad=True).dequant)


# ------------------------------------------------------------------------------------ MiniLM
@pytest.fixture(scope="module")
def minilm():
    from semdialect.torch.minilm import load_torch_minilm

    tm = load_torch_minilm()
    texts = stdlib_sentences(2)
    ref = Reference()
    ref_emb = tm.numpy_model.encode(texts, linear=ref)
    return tm, texts, ref, ref_emb


def test_minilm_fp32_equals_numpy(minilm) -> None:  # noqa: ANN001
    tm, texts, _, ref_emb = minilm
    assert len(tm.linear_names) == 36
    assert all(isinstance(tm.get_submodule(n), nn.Linear) for n in tm.linear_names)
    np.testing.assert_allclose(tm.encode(texts), ref_emb, rtol=0, atol=1e-5)
    ids, mask = tm.numpy_model.tokenize(texts)
    hidden = tm(torch.from_numpy(ids), torch.from_numpy(mask)).detach().numpy()
    np.testing.assert_allclose(hidden, tm.numpy_model.forward(ids, mask), rtol=0, atol=2e-5)


@pytest.mark.parametrize("variant", [Variant("sd32", fmt="sd32"),
                                     Variant("sd32 decomposition", fmt="sd32",
                                             decompose=True)], ids=["sd32", "decomposed"])
def test_minilm_fake_quant_matches_golden_w4a4(minilm, variant: Variant) -> None:  # noqa: ANN001
    tm, texts, ref, ref_emb = minilm
    golden = minilm_variant(tm.numpy_model, texts, variant, Weights(), ref, ref_emb)
    m = copy.deepcopy(tm)
    if variant.decompose:
        m.keep_fp32_reference()  # maps of an FP32 pass, as semdialect eval
        fake_quantize_(m, "sd32", rho=variant.rho, attention=m.attention_provider)
    else:
        fake_quantize_(m, "sd32")
    cos = embedding_metrics(ref_emb, m.encode(texts))[0]
    if variant.decompose:  # the provider hands out the FP32 pass's maps (the eval's ctx maps,
        for layer in (0, 5):  # up to torch's float32 matmul rounding)
            np.testing.assert_allclose(m.attention_map(layer).numpy(), ref.maps[layer][-1],
                                       rtol=0, atol=1e-5)
    assert golden.cos_mean < 0.99  # the quantization is visible ...
    assert abs(cos - golden.cos_mean) < 2e-3  # ... and the same as golden's
