"""Low-rank factorization, the survey's third family: one dense layer replaced by a chain of smaller ones.

One verb: ``factorize(model, LowRankConfig(method, rank))`` (the low-rank name of
:func:`gansurvey.compress.compress`) returns a factorized copy and never touches its input. Each factorized layer
is a real module tree of smaller layers (a :class:`FactorizedLayer`, or a :class:`TTLinear`), so parameters,
MACs, stored bytes and latency fall for real; every one follows the :class:`~gansurvey.layers.CompressedLayer`
protocol (``stored_params``, ``dense_weight``) that the cost metrics read.

Methods (``LowRankConfig.method``):

- ``svd`` -- truncated SVD (Denton et al. 2014, "Exploiting linear structure within convolutional networks";
  Jaderberg et al. 2014, "Speeding up convolutional neural networks with low rank expansions"). A Linear becomes
  Linear(in, r) -> Linear(r, out); a Conv2d becomes a kxk convolution to r channels (the original stride,
  padding, dilation) followed by a 1x1 convolution r -> out; a ConvTranspose2d becomes a kxk transposed
  convolution to r channels (its stride, padding, output_padding, dilation) followed by a 1x1 convolution.
- ``tucker2`` -- Tucker-2 on the two channel modes (Kim et al. 2016, "Compression of deep convolutional neural
  networks for fast and low power mobile applications"): 1x1 (in -> r_in), kxk core (r_in -> r_out), 1x1
  (r_out -> out), computed with tensorly's ``partial_tucker`` (HOOI from an SVD start). For a ConvTranspose2d,
  whose weight is laid out (in, out, kh, kw), the core is a transposed convolution and only the core carries the
  stride, padding, output_padding and dilation.
- ``cp`` -- rank-R CP (Lebedev et al. 2015, "Speeding-up convolutional neural networks using fine-tuned
  CP-decomposition"): 1x1 (in -> R), depthwise kh x 1, depthwise 1 x kw, 1x1 (R -> out), computed by
  alternating least squares from an SVD start with a fixed seed (tensorly's ``parafac`` algorithm, in
  torch). Every step acts on one axis, so the chain is exact
  for a Conv2d and for a ConvTranspose2d alike (the transposed chain splits stride, padding, output_padding and
  dilation per axis). At the full CP rank (kh * kw * min(in, out)) an exact decomposition is built directly.
- ``tt`` -- a tensor-train Linear (Novikov et al. 2015, "Tensorizing neural networks"), the layer type of
  Tensorizing GANs (Cao, Zhao & Zhao 2017, arXiv 1710.10772): the (out, in) weight reshaped to a
  ``cores``-way tensor of (out mode x in mode) pairs and split by TT-SVD into ``cores`` small cores.

Rank (exactly one of):

- ``rank=int``: that rank per layer (for ``tucker2`` both channel modes, for ``tt`` every bond), clipped to a
  layer's full rank where one mode is smaller;
- ``rank=float`` in (0, 1]: that fraction of each layer's full rank, rounded up (``1.0`` is the full rank);
- ``energy=float`` in (0, 1]: the smallest rank keeping that share of the squared singular values (per unfolding
  for ``tucker2`` and ``tt``); not defined for ``cp``, which has no singular values;
- ``rank="vbmf"``: the rank estimated per unfolding by empirical variational Bayesian matrix factorization
  (Nakajima et al. 2013), as Kim et al. 2016 choose Tucker-2 ranks; not for ``cp``.

Which layers (``layers``): ``None`` factorizes every layer the method can handle (Linear for ``svd``/``tt``,
Conv2d and ConvTranspose2d with ``groups=1`` for ``svd``/``tucker2``/``cp``), skipping those where the requested
rank would not save parameters, grouped convolutions, layers already inside a compressed layer, and (for an
integer rank) layers whose full rank is below it; a model whose layers are all skipped comes back unchanged (a
model with no layer of the method's types at all is an error). Named layers are factorized as asked, and an
impossible request for one is an error. ``factorized_layers(model)`` lists what was factorized.

At full rank (``rank=1.0`` or ``energy=1.0``) every factorized layer reproduces its dense layer to float
tolerance.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress.base import CompressConfig, check_family_configs, compress, register
from gansurvey.layers import CompressedLayer, is_compressed

__all__ = [
    "LOWRANK_METHODS", "CPConv2d", "CPConvTranspose2d", "FactorizedLayer", "LowRankConfig", "SVDConv2d",
    "SVDConvTranspose2d", "SVDLinear", "TTLinear", "Tucker2Conv2d", "Tucker2ConvTranspose2d", "evbmf_rank",
    "factorizable_layers", "factorization_plan", "factorize", "factorized_layers", "full_ranks", "lowrank_report",
]

#: The factorization methods and the layer types each one handles.
LOWRANK_METHODS: dict[str, tuple[type, ...]] = {
    "svd": (nn.Linear, nn.Conv2d, nn.ConvTranspose2d),
    "tucker2": (nn.Conv2d, nn.ConvTranspose2d),
    "cp": (nn.Conv2d, nn.ConvTranspose2d),
    "tt": (nn.Linear,),
}
RANK_ESTIMATORS = ("vbmf",)
DEFAULT_TT_CORES = 3
_CP_ITERATIONS = 60
_TUCKER_ITERATIONS = 10
_ALLOWED_RANK = "an integer >= 1, a fraction in (0, 1] of the full rank, or 'vbmf'"


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class LowRankConfig(CompressConfig):
    """Replace layers by low-rank factorizations (see the module docstring for the methods and rank rules).

    Args:
        method: ``svd``, ``tucker2``, ``cp`` or ``tt``.
        rank: an integer >= 1, a fraction in (0, 1] of each layer's full rank, or ``"vbmf"`` (estimated);
            leave ``None`` when ``energy`` is given.
        energy: share of the squared singular values to keep, in (0, 1] (``svd``, ``tucker2``, ``tt``).
        layers: module names to factorize; ``None`` = every eligible layer where it saves parameters.
        cores: number of TT cores for ``tt`` (default 3); only for ``tt``.

    Example::

        LowRankConfig("svd", rank=0.25)          # a quarter of every layer's full rank
        LowRankConfig("tucker2", energy=0.9)     # ranks keeping 90% of the squared singular values
        LowRankConfig("tucker2", rank="vbmf")    # ranks estimated by VBMF (Kim et al. 2016)
        LowRankConfig("tt", rank=8, cores=3)     # tensor-train Linear layers with bond rank 8
    """

    family: ClassVar[str] = "low-rank"
    stage_rank: ClassVar[int] = 2
    stage_rule: ClassVar[str] = ("factorization works on float weights, so it comes before quantization and encoding")
    VERSION: ClassVar[int] = 1

    method: str
    rank: int | float | str | None = None
    energy: float | None = None
    layers: tuple[str, ...] | None = None
    cores: int | None = None

    def __post_init__(self) -> None:
        check_choice("low-rank method", self.method, LOWRANK_METHODS)
        if (self.rank is None) == (self.energy is None):
            given = "both" if self.rank is not None else "neither"
            raise GanSurveyError(f"LowRankConfig needs exactly one of rank ({_ALLOWED_RANK}) and energy (a share "
                                 f"of the squared singular values in (0, 1]); {given} given")
        if self.rank is not None:
            _check_rank(self.rank)
        if self.energy is not None:
            if isinstance(self.energy, bool) or not isinstance(self.energy, (int, float)) or not (
                    0 < self.energy <= 1):
                raise GanSurveyError(f"energy must be a number in (0, 1] (the share of squared singular values "
                                     f"kept), got {self.energy!r}")
            object.__setattr__(self, "energy", float(self.energy))
        if self.method == "cp" and (self.energy is not None or self.rank == "vbmf"):
            what = f"energy={self.energy!r}" if self.energy is not None else "rank='vbmf'"
            raise GanSurveyError(f"method 'cp' cannot choose its rank from singular values ({what}); allowed for "
                                 "cp: rank as an integer >= 1 or a fraction in (0, 1]")
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(n, str) for n in self.layers) or \
                    not self.layers:
                raise GanSurveyError(f"layers must be a non-empty tuple of module names or None, got "
                                     f"{self.layers!r}")
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.cores is not None:
            if self.method != "tt":
                raise GanSurveyError(f"cores={self.cores!r} is for method 'tt' only; leave it None for "
                                     f"{self.method!r}")
            check_number("cores (number of TT cores)", self.cores, minimum=2, maximum=8, integer=True)

    @property
    def tt_cores(self) -> int:
        """The number of TT cores used (``cores`` or the default)."""
        return self.cores if self.cores is not None else DEFAULT_TT_CORES

    def describe(self) -> str:
        """A short display label, e.g. ``svd r=0.25`` or ``tucker2 e=0.9``."""
        how = f"e={self.energy:g}" if self.energy is not None else f"r={self.rank:g}" if not isinstance(
            self.rank, str) else f"r={self.rank}"
        return f"{self.method} {how}"


def _check_rank(rank: Any) -> None:
    if isinstance(rank, str):
        if rank not in RANK_ESTIMATORS:
            raise GanSurveyError(f"unknown rank estimator {rank!r}; rank must be {_ALLOWED_RANK}")
        return
    if isinstance(rank, bool) or not isinstance(rank, (int, float)):
        raise GanSurveyError(f"rank must be {_ALLOWED_RANK}; got {rank!r} ({type(rank).__name__})")
    if isinstance(rank, int):
        if rank < 1:
            raise GanSurveyError(f"rank {rank!r} is not allowed; rank must be {_ALLOWED_RANK}")
        return
    if not (0 < rank <= 1):
        hint = f" (for the integer rank {int(rank)}, pass {int(rank)})" if math.isfinite(rank) and \
            rank.is_integer() else ""
        raise GanSurveyError(f"rank {rank!r} is not allowed; rank must be {_ALLOWED_RANK}{hint}")


# --------------------------------------------------------------------------------------------- layers


class FactorizedLayer(nn.Sequential, CompressedLayer):
    """A dense layer replaced by a chain of smaller ones; the base of every factorized convolution and Linear.

    Attributes:
        method: the factorization (``svd``, ``tucker2``, ``cp``).
        ranks: the ranks used (one or two integers).
        dense_type: the type name of the layer it stands for.
    """

    method: ClassVar[str] = ""
    dense_type: ClassVar[str] = ""

    def __init__(self, *layers: nn.Module, ranks: tuple[int, ...]) -> None:
        super().__init__(*layers)
        self.ranks = tuple(int(r) for r in ranks)

    def engine(self, x: torch.Tensor | torch.device | str | None = None) -> str:
        return "torch-factorized"  # the factors run as they are stored: fewer MACs and bytes, no decoding

    def stored_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def dense_weight(self) -> torch.Tensor:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def dense_bias(self) -> torch.Tensor | None:
        """The bias of the layer it stands for (carried by the last factor)."""
        bias = self[-1].bias
        return None if bias is None else bias.detach().clone()

    def extra_repr(self) -> str:
        return f"method={self.method}, ranks={self.ranks}, replaces={self.dense_type}"


def _w(layer: nn.Module) -> torch.Tensor:
    return layer.weight.detach()


class SVDLinear(FactorizedLayer):
    """Linear(in, r, bias=False) -> Linear(r, out): W = W2 @ W1 (Denton et al. 2014)."""

    method, dense_type = "svd", "Linear"

    def dense_weight(self) -> torch.Tensor:
        return _w(self[1]) @ _w(self[0])


class SVDConv2d(FactorizedLayer):
    """kxk Conv2d in -> r (the original geometry), then 1x1 Conv2d r -> out (Denton et al. 2014)."""

    method, dense_type = "svd", "Conv2d"

    def dense_weight(self) -> torch.Tensor:
        return torch.einsum("or,rihw->oihw", _w(self[1])[:, :, 0, 0], _w(self[0]))


class SVDConvTranspose2d(FactorizedLayer):
    """kxk ConvTranspose2d in -> r (the original geometry), then 1x1 Conv2d r -> out."""

    method, dense_type = "svd", "ConvTranspose2d"

    def dense_weight(self) -> torch.Tensor:
        return torch.einsum("irhw,or->iohw", _w(self[0]), _w(self[1])[:, :, 0, 0])


class Tucker2Conv2d(FactorizedLayer):
    """1x1 Conv2d in -> r_in, kxk Conv2d core r_in -> r_out (the original geometry), 1x1 Conv2d r_out -> out
    (Kim et al. 2016). ``ranks`` is (r_out, r_in)."""

    method, dense_type = "tucker2", "Conv2d"

    def dense_weight(self) -> torch.Tensor:
        return torch.einsum("si,tshw,ot->oihw", _w(self[0])[:, :, 0, 0], _w(self[1]), _w(self[2])[:, :, 0, 0])


class Tucker2ConvTranspose2d(FactorizedLayer):
    """1x1 Conv2d in -> r_in, kxk ConvTranspose2d core r_in -> r_out (only the core has the stride, padding,
    output_padding and dilation), 1x1 Conv2d r_out -> out. ``ranks`` is (r_out, r_in)."""

    method, dense_type = "tucker2", "ConvTranspose2d"

    def dense_weight(self) -> torch.Tensor:
        return torch.einsum("si,sthw,ot->iohw", _w(self[0])[:, :, 0, 0], _w(self[1]), _w(self[2])[:, :, 0, 0])


class CPConv2d(FactorizedLayer):
    """1x1 Conv2d in -> R, depthwise (kh x 1), depthwise (1 x kw), 1x1 Conv2d R -> out (Lebedev et al. 2015)."""

    method, dense_type = "cp", "Conv2d"

    def dense_weight(self) -> torch.Tensor:
        return torch.einsum("ri,rh,rw,or->oihw", _w(self[0])[:, :, 0, 0], _w(self[1])[:, 0, :, 0],
                            _w(self[2])[:, 0, 0, :], _w(self[3])[:, :, 0, 0])


class CPConvTranspose2d(FactorizedLayer):
    """1x1 Conv2d in -> R, depthwise transposed (kh x 1) and (1 x kw) with the stride, padding, output_padding
    and dilation split per axis, 1x1 Conv2d R -> out: exact for any rank-R weight."""

    method, dense_type = "cp", "ConvTranspose2d"

    def dense_weight(self) -> torch.Tensor:
        return torch.einsum("ri,rh,rw,or->iohw", _w(self[0])[:, :, 0, 0], _w(self[1])[:, 0, :, 0],
                            _w(self[2])[:, 0, 0, :], _w(self[3])[:, :, 0, 0])


class TTLinear(nn.Module, CompressedLayer):
    """A Linear layer in tensor-train format (Novikov et al. 2015; the tensor layers of Cao et al. 2017).

    The weight W (out x in), with ``out = prod(out_modes)`` and ``in = prod(in_modes)``, is held as cores
    ``G_k`` of shape (r_{k-1}, out_modes[k], in_modes[k], r_k) with r_0 = r_d = 1:
    ``W[(o_1..o_d), (i_1..i_d)] = G_1[:, o_1, i_1, :] @ ... @ G_d[:, o_d, i_d, :]``. The forward contracts the
    input with one core at a time and never builds W.

    Args:
        in_modes: factors of the input size.
        out_modes: factors of the output size (as many as ``in_modes``).
        ranks: the d - 1 inner bond ranks.
        bias: whether it has a bias.
    """

    method: ClassVar[str] = "tt"
    dense_type: ClassVar[str] = "Linear"

    def __init__(self, in_modes: Sequence[int], out_modes: Sequence[int], ranks: Sequence[int],
                 bias: bool = True) -> None:
        super().__init__()
        if len(in_modes) != len(out_modes) or len(ranks) != len(in_modes) - 1:
            raise GanSurveyError(f"TTLinear needs as many in modes as out modes and one rank fewer, got "
                                 f"{tuple(in_modes)}, {tuple(out_modes)}, {tuple(ranks)}")
        self.in_modes, self.out_modes = tuple(int(n) for n in in_modes), tuple(int(m) for m in out_modes)
        self.ranks = tuple(int(r) for r in ranks)
        self.in_features, self.out_features = math.prod(self.in_modes), math.prod(self.out_modes)
        bonds = (1, *self.ranks, 1)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.zeros(bonds[k], m, n, bonds[k + 1]))
            for k, (m, n) in enumerate(zip(self.out_modes, self.in_modes, strict=True)))
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    def engine(self, x: torch.Tensor | torch.device | str | None = None) -> str:
        return "torch-factorized"  # contracts the input core by core; W is never built

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        t = x.reshape(-1, 1, 1, self.in_features)  # (batch, out so far, bond, input left)
        for core, n in zip(self.cores, self.in_modes, strict=True):
            b, m, r, rest = t.shape
            t = t.reshape(b, m, r, n, rest // n)
            t = torch.einsum("bmanz,aonc->bmocz", t, core).reshape(b, m * core.shape[1], core.shape[3], rest // n)
        out = t.reshape(*lead, self.out_features)
        return out + self.bias if self.bias is not None else out

    def stored_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def dense_weight(self) -> torch.Tensor:
        full = self.cores[0].detach()[0]  # (m1, n1, r1)
        for core in list(self.cores)[1:]:
            m, n, _ = full.shape
            full = torch.einsum("mna,aopc->monpc", full, core.detach()).reshape(
                m * core.shape[1], n * core.shape[2], core.shape[3])
        # full is (out, in) with the modes interleaved per core: (o1 o2 ..) x (i1 i2 ..) in row-major order
        return full[..., 0]

    def dense_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias.detach().clone()

    def extra_repr(self) -> str:
        return (f"in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={self.ranks}, "
                f"bias={self.bias is not None}")


# --------------------------------------------------------------------------------------------- choosing layers


def _kind(module: nn.Module) -> type | None:
    for kind in (nn.ConvTranspose2d, nn.Conv2d, nn.Linear):
        if isinstance(module, kind):
            return kind
    return None


def _inside_compressed(name: str, compressed: list[str]) -> bool:
    return any(name.startswith(f"{outer}.") for outer in compressed)


def factorizable_layers(model: nn.Module, method: str) -> dict[str, nn.Module]:
    """The layers ``method`` can factorize, by module name: its layer types with ``groups=1``, not already
    inside a compressed layer (a factorized, sparse or quantized one).

    Example::

        factorizable_layers(generator, "tucker2")  # {'net.0': ConvTranspose2d(...), ...}
    """
    check_choice("low-rank method", method, LOWRANK_METHODS)
    compressed = [name for name, m in model.named_modules() if is_compressed(m)]
    out = {}
    for name, module in model.named_modules():
        if not name or name in compressed or _inside_compressed(name, compressed):
            continue
        if isinstance(module, LOWRANK_METHODS[method]) and getattr(module, "groups", 1) == 1:
            out[name] = module
    return out


def factorized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The factorized layers of ``model`` by name (outermost ones)."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, (FactorizedLayer, TTLinear)) and not _inside_compressed(name, list(found)):
            found[name] = module
    return found


def _select(model: nn.Module, config: LowRankConfig) -> dict[str, nn.Module]:
    eligible = factorizable_layers(model, config.method)
    kinds = ", ".join(t.__name__ for t in LOWRANK_METHODS[config.method])
    if config.layers is None:
        if not eligible and not any(isinstance(m, LOWRANK_METHODS[config.method]) for m in model.modules()):
            raise GanSurveyError(f"{type(model).__name__} has no layer that method {config.method!r} can factorize "
                                 f"(it factorizes {kinds} with groups=1)")
        return eligible
    modules = dict(model.named_modules())
    for name in config.layers:
        if name in eligible:
            continue
        if name not in modules or not name:
            raise GanSurveyError(f"layer {name!r} does not exist in {type(model).__name__}; layers method "
                                 f"{config.method!r} can factorize: {', '.join(map(repr, eligible)) or 'none'}")
        module = modules[name]
        why = (f"a {type(module).__name__} with groups={module.groups}" if getattr(module, "groups", 1) != 1
               and _kind(module) is not None else f"a {type(module).__name__}")
        if is_compressed(module) or _inside_compressed(name, [n for n, m in modules.items() if is_compressed(m)]):
            why = f"already compressed ({type(module).__name__})"
        raise GanSurveyError(f"layer {name!r} is {why}, which method {config.method!r} cannot factorize; it "
                             f"factorizes {kinds} with groups=1; eligible layers: "
                             f"{', '.join(map(repr, eligible)) or 'none'}")
    return {name: eligible[name] for name in config.layers}


# --------------------------------------------------------------------------------------------- ranks


def _weight64(module: nn.Module) -> torch.Tensor:
    return module.weight.detach().to(device="cpu", dtype=torch.float64)


def _geometry(module: nn.Module) -> dict[str, int]:
    """in, out and kernel sizes of a Linear / Conv2d / ConvTranspose2d."""
    if isinstance(module, nn.Linear):
        return dict(cin=module.in_features, cout=module.out_features, kh=1, kw=1)
    kh, kw = module.kernel_size
    return dict(cin=module.in_channels, cout=module.out_channels, kh=kh, kw=kw)


def _matrix(module: nn.Module) -> torch.Tensor:
    """The (out, in*kh*kw) matrix the SVD factorizes (a transposed conv's weight is permuted first)."""
    w = _weight64(module)
    if isinstance(module, nn.ConvTranspose2d):
        w = w.permute(1, 0, 2, 3)
    return w.reshape(w.shape[0], -1)


def _unfoldings(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Mode-out and mode-in unfoldings of a convolution's weight (for Tucker-2)."""
    w = _weight64(module)
    if isinstance(module, nn.ConvTranspose2d):
        w = w.permute(1, 0, 2, 3)  # (out, in, kh, kw)
    return w.reshape(w.shape[0], -1), w.transpose(0, 1).reshape(w.shape[1], -1)


def _tt_modes(n: int, d: int) -> tuple[int, ...]:
    """``n`` split into ``d`` factors as even as possible (prime factors, largest first, onto the smallest)."""
    primes, k, m = [], 2, n
    while k * k <= m:
        while m % k == 0:
            primes.append(k)
            m //= k
        k += 1
    if m > 1:
        primes.append(m)
    buckets = [1] * d
    for p in sorted(primes, reverse=True):
        buckets[buckets.index(min(buckets))] *= p
    return tuple(sorted(buckets))


def _tt_shape(module: nn.Linear, d: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return _tt_modes(module.in_features, d), _tt_modes(module.out_features, d)


def full_ranks(module: nn.Module, method: str, cores: int = DEFAULT_TT_CORES) -> tuple[int, ...]:
    """The largest useful ranks of ``module`` under ``method``: ``svd`` (min(out, in*kh*kw),), ``tucker2``
    (out mode, in mode), ``cp`` (kh*kw*min(in, out),), the size of an exact CP built per kernel tap; ``tt`` one per
    bond, min(product of the pair modes on either side)."""
    check_choice("low-rank method", method, LOWRANK_METHODS)
    g = _geometry(module)
    if method == "svd":
        return (min(g["cout"], g["cin"] * g["kh"] * g["kw"]),)
    if method == "tucker2":
        return (min(g["cout"], g["cin"] * g["kh"] * g["kw"]), min(g["cin"], g["cout"] * g["kh"] * g["kw"]))
    if method == "cp":
        return (g["kh"] * g["kw"] * min(g["cin"], g["cout"]),)
    in_modes, out_modes = _tt_shape(module, cores)
    pairs = [m * n for m, n in zip(out_modes, in_modes, strict=True)]
    return tuple(min(math.prod(pairs[:k]), math.prod(pairs[k:])) for k in range(1, len(pairs)))


def _energy_rank(singular: torch.Tensor, energy: float) -> int:
    if energy >= 1.0:
        return int(singular.numel())
    share = torch.cumsum(singular.double() ** 2, 0) / (singular.double() ** 2).sum().clamp_min(1e-300)
    return int(torch.searchsorted(share, torch.tensor(energy, dtype=share.dtype)).item()) + 1


def evbmf_rank(matrix: torch.Tensor | np.ndarray) -> int:
    """The rank that empirical variational Bayesian matrix factorization keeps (Nakajima, Sugiyama, Babacan &
    Tomioka 2013, "Global analytic solution of fully-observed variational Bayesian matrix factorization"; used by
    Kim et al. 2016 to choose Tucker-2 ranks): singular values above the analytic threshold, with the noise
    variance estimated. At least 1.

    Example::

        evbmf_rank(torch.randn(64, 8) @ torch.randn(8, 64) + 0.01 * torch.randn(64, 64))  # 8
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(matrix.detach().cpu().double() if isinstance(matrix, torch.Tensor) else matrix, dtype=float)
    if y.shape[0] > y.shape[1]:
        y = y.T
    rows, cols = y.shape
    if rows < 2:
        return 1
    s = np.linalg.svd(y, compute_uv=False)
    alpha = rows / cols
    tau_bar = 2.5129 * np.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    residual = max(float((y**2).sum() - (s**2).sum()), 0.0)
    h_upper = max(min(int(np.ceil(rows / (1 + alpha))) - 1, rows) - 1, 0)
    upper = ((s**2).sum() + residual) / (rows * cols)
    lower = max(s[min(h_upper + 1, rows - 1)] ** 2 / (cols * x_bar), float(np.mean(s[h_upper + 1:] ** 2)) / cols
                if h_upper + 1 < rows else 0.0)
    if not upper > 0:
        return 1

    def objective(sigma2: float) -> float:
        x = s**2 / (cols * sigma2)
        big, small = x[x > x_bar], x[x <= x_bar]
        tau = 0.5 * (big - (1 + alpha) + np.sqrt((big - (1 + alpha)) ** 2 - 4 * alpha))
        return float(np.sum(small - np.log(small)) + np.sum(big - tau) + np.sum(np.log((tau + 1) / big))
                     + alpha * np.sum(np.log(tau / alpha + 1)) + residual / (cols * sigma2))

    lower = min(max(lower, upper * 1e-12), upper * (1 - 1e-9))
    sigma2 = minimize_scalar(objective, bounds=(lower, upper), method="bounded").x
    threshold = np.sqrt(cols * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return max(1, int((s > threshold).sum()))


def _svals(matrix: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(matrix)


def _pick(config: LowRankConfig, full: int, matrix: torch.Tensor | None) -> int:
    """One rank from the config for a mode whose full rank is ``full`` (``matrix``: its unfolding)."""
    if config.energy is not None:
        return min(full, _energy_rank(_svals(matrix), config.energy))
    if config.rank == "vbmf":
        return min(full, evbmf_rank(matrix))
    if isinstance(config.rank, float):
        return max(1, min(full, math.ceil(config.rank * full - 1e-9)))
    return min(full, int(config.rank))


def _ranks(module: nn.Module, config: LowRankConfig) -> tuple[int, ...]:
    """The ranks ``config`` gives ``module`` (TT bond ranks come from the TT-SVD itself for energy/vbmf)."""
    full = full_ranks(module, config.method, config.tt_cores)
    if config.method == "svd":
        return (_pick(config, full[0], _matrix(module) if not isinstance(config.rank, (int, float)) else None),)
    if config.method == "tucker2":
        need = not isinstance(config.rank, (int, float))
        outs, ins = _unfoldings(module) if need else (None, None)
        return _pick(config, full[0], outs), _pick(config, full[1], ins)
    if config.method == "cp":
        return (_pick(config, full[0], None),)
    if isinstance(config.rank, (int, float)):
        return tuple(_pick(config, f, None) for f in full)
    return _tt_svd(module, config, full)[1]  # energy / vbmf: chosen bond by bond during the TT-SVD


def _params_after(module: nn.Module, method: str, ranks: tuple[int, ...], cores: int) -> int:
    g = _geometry(module)
    cin, cout, k = g["cin"], g["cout"], g["kh"] * g["kw"]
    if method == "svd":
        return ranks[0] * (cin * k + cout)
    if method == "tucker2":
        r_out, r_in = ranks
        return cin * r_in + r_in * r_out * k + r_out * cout
    if method == "cp":
        return ranks[0] * (cin + g["kh"] + g["kw"] + cout)
    in_modes, out_modes = _tt_shape(module, cores)
    bonds = (1, *ranks, 1)
    return sum(bonds[i] * m * n * bonds[i + 1] for i, (m, n) in enumerate(zip(out_modes, in_modes, strict=True)))


# --------------------------------------------------------------------------------------------- building


def _to(t: torch.Tensor | np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(t).to(device=like.device, dtype=like.dtype).contiguous()


def _conv(cin: int, cout: int, kernel: tuple[int, int] | int = 1, bias: bool = False, **kwargs: Any) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, bias=bias, **kwargs)


def _set(layer: nn.Module, weight: torch.Tensor, like: nn.Module, bias: bool = False) -> nn.Module:
    layer = layer.to(device=like.weight.device, dtype=like.weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(_to(weight, like.weight))
        if bias and like.bias is not None:
            layer.bias.copy_(like.bias.detach())
    return layer


def _conv_geometry(module: nn.Module) -> dict[str, Any]:
    out = dict(stride=module.stride, padding=module.padding, dilation=module.dilation)
    if isinstance(module, nn.ConvTranspose2d):
        out["output_padding"] = module.output_padding
    else:
        out["padding_mode"] = module.padding_mode
    return out


def _svd(module: nn.Module, rank: int) -> FactorizedLayer:
    m = _matrix(module)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    root = s[:rank].sqrt()
    left, right = u[:, :rank] * root, root[:, None] * vh[:rank]  # (out, r), (r, in*kh*kw)
    has_bias = module.bias is not None
    if isinstance(module, nn.Linear):
        first = nn.Linear(module.in_features, rank, bias=False)
        last = nn.Linear(rank, module.out_features, bias=has_bias)
        return SVDLinear(_set(first, right, module), _set(last, left, module, True), ranks=(rank,))
    kh, kw = module.kernel_size
    last = _set(_conv(rank, module.out_channels, bias=has_bias), left[:, :, None, None], module, True)
    if isinstance(module, nn.ConvTranspose2d):
        core = nn.ConvTranspose2d(module.in_channels, rank, (kh, kw), bias=False, **_conv_geometry(module))
        weight = right.reshape(rank, module.in_channels, kh, kw).transpose(0, 1)
        return SVDConvTranspose2d(_set(core, weight, module), last, ranks=(rank,))
    core = nn.Conv2d(module.in_channels, rank, (kh, kw), bias=False, **_conv_geometry(module))
    return SVDConv2d(_set(core, right.reshape(rank, module.in_channels, kh, kw), module), last, ranks=(rank,))


def _tensorly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    import tensorly as tl

    with tl.backend_context("pytorch"), warnings.catch_warnings():  # the global backend is left as it was
        warnings.simplefilter("ignore")  # tensorly warns when an SVD start asks for more vectors than a mode has
        return fn(*args, **kwargs)


def _tucker2(module: nn.Module, ranks: tuple[int, int]) -> FactorizedLayer:
    from tensorly.decomposition import partial_tucker

    r_out, r_in = ranks
    w = _weight64(module)
    transposed = isinstance(module, nn.ConvTranspose2d)
    w = w.permute(1, 0, 2, 3) if transposed else w  # (out, in, kh, kw)
    full = full_ranks(module, "tucker2")
    if (r_out, r_in) == full:
        # Exact: the leading singular vectors of each unfolding span it entirely (no iterations needed).
        u_out = torch.linalg.svd(w.reshape(w.shape[0], -1), full_matrices=False)[0][:, :r_out]
        u_in = torch.linalg.svd(w.transpose(0, 1).reshape(w.shape[1], -1), full_matrices=False)[0][:, :r_in]
        core = torch.einsum("oihw,or,is->rshw", w, u_out, u_in)
    else:
        (core, (u_out, u_in)), _ = _tensorly(partial_tucker, w, rank=[r_out, r_in], modes=[0, 1],
                                             n_iter_max=_TUCKER_ITERATIONS, init="svd", random_state=0)
    cin, cout = module.in_channels, module.out_channels
    first = _set(_conv(cin, r_in), u_in.T[:, :, None, None], module)
    last = _set(_conv(r_out, cout, bias=module.bias is not None), u_out[:, :, None, None], module, True)
    if transposed:
        core_layer = nn.ConvTranspose2d(r_in, r_out, module.kernel_size, bias=False, **_conv_geometry(module))
        return Tucker2ConvTranspose2d(first, _set(core_layer, core.transpose(0, 1), module), last, ranks=ranks)
    core_layer = nn.Conv2d(r_in, r_out, module.kernel_size, bias=False, **_conv_geometry(module))
    return Tucker2Conv2d(first, _set(core_layer, core, module), last, ranks=ranks)


def _cp_exact(w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """An exact CP of w (out, in, kh, kw) with kh*kw*min(in, out) terms: an SVD of every kernel tap's slice."""
    cout, cin, kh, kw = w.shape
    r = min(cin, cout)
    a, b, c, d = [], [], [], []
    for h in range(kh):
        for x in range(kw):
            u, s, vh = torch.linalg.svd(w[:, :, h, x], full_matrices=False)
            a.append(u[:, :r] * s[:r])
            b.append(vh[:r].T)
            c.append(torch.nn.functional.one_hot(torch.full((r,), h), kh).T.double())
            d.append(torch.nn.functional.one_hot(torch.full((r,), x), kw).T.double())
    return tuple(torch.cat(f, 1) for f in (a, b, c, d))  # (out, R), (in, R), (kh, R), (kw, R)


_MTTKRP = ("oihw,ir,hr,wr->or", "oihw,or,hr,wr->ir", "oihw,or,ir,wr->hr", "oihw,or,ir,hr->wr")


def _cp_als(w: torch.Tensor, rank: int, iterations: int = _CP_ITERATIONS, tol: float = 1e-4) -> list[torch.Tensor]:
    """Rank-``rank`` CP of the 4-way ``w`` by alternating least squares from an SVD start (columns beyond a
    mode's size drawn from a fixed seed): the algorithm of tensorly's ``parafac``, in torch with einsum
    contractions, because tensorly's Khatri-Rao product took 0.3-0.4 s per iteration on one DCGAN layer. Stops
    after ``iterations`` sweeps or when the relative error changes by less than ``tol`` (tensorly's rule).
    Returns one (size, rank) factor per mode."""
    gen = torch.Generator().manual_seed(0)
    factors = []
    for mode in range(4):
        u = torch.linalg.svd(w.movedim(mode, 0).reshape(w.shape[mode], -1), full_matrices=False)[0]
        k = min(rank, u.shape[1])
        start = torch.randn(w.shape[mode], rank, generator=gen, dtype=w.dtype)
        start[:, :k] = u[:, :k]
        factors.append(start)
    eye, norm2, previous = torch.eye(rank, dtype=w.dtype), w.square().sum(), None
    for _ in range(iterations):
        for mode, spec in enumerate(_MTTKRP):
            others = [f for j, f in enumerate(factors) if j != mode]
            gram = math.prod(f.T @ f for f in others)
            mttkrp = torch.einsum(spec, w, *others)
            ridge = 1e-12 * gram.diagonal().sum().clamp_min(1e-300)
            factors[mode] = torch.linalg.solve(gram + ridge * eye, mttkrp.T).T
        # relative error from the last update, without rebuilding the tensor: |W|^2 - 2<W, X> + |X|^2
        inner = (mttkrp * factors[-1]).sum()
        error = ((norm2 - 2 * inner + (gram * (factors[-1].T @ factors[-1])).sum()).clamp_min(0) / norm2).sqrt()
        if previous is not None and abs(previous - error) < tol:
            break
        previous = error
    return factors


def _cp(module: nn.Module, rank: int) -> FactorizedLayer:
    w = _weight64(module)
    transposed = isinstance(module, nn.ConvTranspose2d)
    w = w.permute(1, 0, 2, 3) if transposed else w  # (out, in, kh, kw)
    if rank >= full_ranks(module, "cp")[0]:
        a, b, c, d = _cp_exact(w)
    else:
        a, b, c, d = _cp_als(w, rank)
        # spread the scale evenly over the factors, so fine-tuning starts well conditioned
        norms = [f.norm(dim=0).clamp_min(1e-30) for f in (a, b, c, d)]
        scale = torch.stack(norms).prod(0) ** 0.25
        a, b, c, d = (f / n * scale for f, n in zip((a, b, c, d), norms, strict=True))
    cin, cout = module.in_channels, module.out_channels
    (kh, kw), (sh, sw), (dh, dw) = module.kernel_size, module.stride, module.dilation
    first = _set(_conv(cin, rank), b.T[:, :, None, None], module)
    last = _set(_conv(rank, cout, bias=module.bias is not None), a[:, :, None, None], module, True)
    if transposed:
        (ph, pw), (oh, ow) = module.padding, module.output_padding
        vertical = nn.ConvTranspose2d(rank, rank, (kh, 1), (sh, 1), (ph, 0), (oh, 0), groups=rank, bias=False,
                                      dilation=(dh, 1))
        horizontal = nn.ConvTranspose2d(rank, rank, (1, kw), (1, sw), (0, pw), (0, ow), groups=rank, bias=False,
                                        dilation=(1, dw))
        kind = CPConvTranspose2d
    else:
        if isinstance(module.padding, str):
            pads = (module.padding, module.padding)
        else:
            pads = ((module.padding[0], 0), (0, module.padding[1]))
        mode = module.padding_mode
        vertical = nn.Conv2d(rank, rank, (kh, 1), (sh, 1), pads[0], (dh, 1), groups=rank, bias=False,
                             padding_mode=mode)
        horizontal = nn.Conv2d(rank, rank, (1, kw), (1, sw), pads[1], (1, dw), groups=rank, bias=False,
                               padding_mode=mode)
        kind = CPConv2d
    vertical = _set(vertical, c.T[:, None, :, None], module)
    horizontal = _set(horizontal, d.T[:, None, None, :], module)
    return kind(first, vertical, horizontal, last, ranks=(rank,))


def _tt_svd(module: nn.Linear, config: LowRankConfig, ranks: tuple[int, ...]
            ) -> tuple[list[torch.Tensor], tuple[int, ...]]:
    """TT-SVD (Oseledets 2011) of the weight reshaped to (out_1 in_1) x ... x (out_d in_d): the cores and the
    bond ranks, each at most ``ranks[k]`` (and cut further by ``energy`` / VBMF when the config asks)."""
    d = config.tt_cores
    in_modes, out_modes = _tt_shape(module, d)
    w = _weight64(module).reshape(*out_modes, *in_modes)
    w = w.permute(*[j for k in range(d) for j in (k, d + k)])  # o1 i1 o2 i2 ...
    pairs = [m * n for m, n in zip(out_modes, in_modes, strict=True)]
    cores, chosen, bond, rest = [], [], 1, w.reshape(pairs[0], -1)
    for k in range(d - 1):
        u, s, vh = torch.linalg.svd(rest, full_matrices=False)
        r = min(s.numel(), ranks[k])
        if config.energy is not None:
            r = min(r, _energy_rank(s, config.energy))
        elif config.rank == "vbmf":
            r = min(r, evbmf_rank(rest))
        chosen.append(r)
        cores.append(u[:, :r].reshape(bond, out_modes[k], in_modes[k], r))
        rest = (s[:r, None] * vh[:r]).reshape(r * pairs[k + 1], -1)
        bond = r
    cores.append(rest.reshape(bond, out_modes[-1], in_modes[-1], 1))
    return cores, tuple(chosen)


def _tt(module: nn.Linear, config: LowRankConfig, ranks: tuple[int, ...]) -> TTLinear:
    cores, chosen = _tt_svd(module, LowRankConfig("tt", rank=1.0, cores=config.tt_cores), ranks)
    in_modes, out_modes = _tt_shape(module, config.tt_cores)
    layer = TTLinear(in_modes, out_modes, chosen, bias=module.bias is not None).to(
        device=module.weight.device, dtype=module.weight.dtype)
    with torch.no_grad():
        for param, core in zip(layer.cores, cores, strict=True):
            param.copy_(_to(core, module.weight))
        if module.bias is not None:
            layer.bias.copy_(module.bias.detach())
    return layer


def _factorize_layer(module: nn.Module, config: LowRankConfig, ranks: tuple[int, ...]) -> nn.Module:
    if config.method == "svd":
        return _svd(module, ranks[0])
    if config.method == "tucker2":
        return _tucker2(module, ranks)
    if config.method == "cp":
        return _cp(module, ranks[0])
    return _tt(module, config, ranks)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    new.train(parent.training)
    setattr(parent, child, new)


def _check_integer_rank(model: nn.Module, config: LowRankConfig, layers: dict[str, nn.Module]) -> dict[str, Any]:
    """Integer ranks above a layer's full rank: an error for named layers and when no layer admits the rank;
    otherwise those layers are left out."""
    if not isinstance(config.rank, int) or not layers:
        return layers
    fulls = {name: max(full_ranks(m, config.method, config.tt_cores)) for name, m in layers.items()}
    if config.layers is not None:
        for name, full in fulls.items():
            if config.rank > full:
                raise GanSurveyError(f"rank {config.rank} is above the full rank of layer {name!r} under "
                                     f"{config.method!r}; allowed: 1..{full} (or a fraction in (0, 1])")
        return layers
    if all(config.rank > full for full in fulls.values()):
        raise GanSurveyError(f"rank {config.rank} is above the full rank of every layer of "
                             f"{type(model).__name__} that {config.method!r} can factorize; allowed: "
                             f"1..{max(fulls.values())} (or a fraction in (0, 1])")
    return {name: m for name, m in layers.items() if config.rank <= fulls[name]}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the decompositions on one thread (torch and the BLAS under numpy), restored afterwards: the matrices
    are small, and on a busy machine multithreaded LAPACK spins (an SVD of 256 x 1600 took 2-4 s on two busy
    cores, 0.3 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - pinned, but an installation without it still factorizes
            limits = contextlib.nullcontext()
        else:
            limits = threadpool_limits(1)
        with limits:
            yield
    finally:
        torch.set_num_threads(threads)


def _apply(model: nn.Module, config: LowRankConfig) -> nn.Module:
    """Factorize the selected layers of ``model`` in place."""
    layers = _check_integer_rank(model, config, _select(model, config))
    with _one_thread():
        _factorize_all(model, config, layers)
    return model


def _factorize_all(model: nn.Module, config: LowRankConfig, layers: dict[str, nn.Module]) -> None:
    for row in _plan(config, layers):
        if row["factorized"]:
            _replace(model, row["layer"], _factorize_layer(layers[row["layer"]], config, row["ranks"]))


def _plan(config: LowRankConfig, layers: dict[str, nn.Module]) -> list[dict[str, Any]]:
    rows = []
    for name, module in layers.items():
        ranks = _ranks(module, config)
        dense, after = module.weight.numel(), _params_after(module, config.method, ranks, config.tt_cores)
        rows.append(dict(layer=name, type=type(module).__name__, ranks=tuple(ranks), full_ranks=full_ranks(
            module, config.method, config.tt_cores), dense_params=dense, params=after,
            factorized=config.layers is not None or after < dense))  # layers=None: only where it saves
    return rows


def factorization_plan(model: nn.Module, config: LowRankConfig) -> list[dict[str, Any]]:
    """What :func:`factorize` would do, without doing it: one row per selected layer with its type, the ranks
    it would get and its full ranks, its weight count now (``dense_params``) and after (``params``, biases
    left out), and whether it would be factorized (``layers=None`` skips layers where nothing is saved).
    The same errors as ``factorize`` for bad requests; ``model`` is not modified.

    Example::

        [r["layer"] for r in factorization_plan(generator, LowRankConfig("svd", rank=0.25)) if r["factorized"]]
    """
    check_family_configs("factorization_plan", model, config, (LowRankConfig,))
    layers = _check_integer_rank(model, config, _select(model, config))
    with _one_thread():
        return _plan(config, layers)


@register(LowRankConfig)
def _lowrank_handler(model: nn.Module, config: LowRankConfig, example_input: Any) -> nn.Module:
    return _apply(model, config)


def factorize(model: nn.Module, config: LowRankConfig | Sequence[LowRankConfig],
              example_input: Any = None) -> nn.Module:
    """A factorized copy of ``model`` (any module: a generator built here or not); the input is never modified.

    Args:
        model: the module whose Linear / Conv2d / ConvTranspose2d layers are factorized.
        config: a :class:`LowRankConfig`, or a list applied in order (e.g. Tucker-2 on some layers, SVD on others).
        example_input: unused (accepted for the common ``compress`` signature).

    Returns:
        The new module; its factorized layers are :class:`FactorizedLayer` / :class:`TTLinear` modules and its
        ``compression`` lists the configs applied.

    Example::

        small = factorize(generator, LowRankConfig("tucker2", rank=0.25))
        exact = factorize(generator, LowRankConfig("svd", rank=1.0, layers=("net.0",)))
        factorized_layers(small)  # {'net.0': Tucker2ConvTranspose2d(...), ...}
    """
    check_family_configs("factorize", model, config, (LowRankConfig,))
    return compress(model, config, example_input)


def lowrank_report(model: nn.Module) -> list[dict[str, Any]]:
    """One row per factorized layer: name, method, what it replaced, ranks, stored params, and the dense
    layer's params (``dense_params``), so the per-layer reduction can be read."""
    rows = []
    for name, layer in factorized_layers(model).items():
        dense = layer.dense_weight().numel()
        rows.append(dict(layer=name, method=layer.method, replaces=layer.dense_type, ranks=tuple(layer.ranks),
                         params=layer.stored_params(), dense_params=dense + (
                             0 if layer.dense_bias() is None else layer.dense_bias().numel())))
    return rows
