"""Lowering numeric precision, the survey's fourth family: weights (and optionally activations) stored as few-bit
integers.

One verb, ``quantize(model, QuantConfig(...))`` (the precision name of :func:`gansurvey.compress.compress`),
returns a copy whose Linear, Conv2d **and ConvTranspose2d** layers hold packed integer codes and scales
(:mod:`.quantized_layers`); most quantization tools cover Linear only, while GAN generators are mostly transposed
convolutions. Around it:

- :func:`prepare_qat` / :func:`convert_qat`: quantization-aware training with fake quantization and the
  straight-through estimator; ``gansurvey.experiments.precision.quantization_aware_finetune`` runs it with the
  shared trainer and the same step budget as every other family. QGAN (Wang et al. 2019) reports that GANs need
  training-aware quantization at very low bit widths, which the 04_precision notebook checks;
- :func:`layer_sensitivity` and :func:`allocate_bits`: mixed precision, bits per layer chosen greedily under a
  stored-bytes budget (an exact knapsack) and recorded in the config (``per_layer_bits``);
- :func:`to_integer_engine`: the quantized model run by PyTorch's integer CPU engines (``fbgemm``, ``qnnpack``),
  layer by layer; :func:`to_fused_engine`: the same as one static-quantized graph (batch norms folded, int8
  activations between layers), what PyTorch's own static quantization of a CNN gives; :func:`to_int4_cpu_engine`:
  4-bit Linear layers on PyTorch's packed int4 weight-only CPU matmul;
- :func:`sqnr_db`: signal-to-quantization-noise ratio of an output against the float one.

Rounding methods: ``nearest`` (scales from the full range), ``mse`` (the clipping ratio with the least squared
weight error per scale group) and ``gptq``, calibration-based: GPTQ's column-by-column rounding with error
feedback through the inverse Hessian of the layer's inputs (Frantar et al. 2023; the Optimal Brain Quantizer
without its lazy batching, inputs taken from the float model in one pass).
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress.base import CompressConfig, check_family_configs, compress, register
from gansurvey.compress.quantized_layers import (
    QUANTIZABLE_TYPES,
    FakeQuantLayer,
    FusedEngineModel,
    Geometry,
    Int4PackLinear,
    QuantizedLayer,
    QuantizedLinear,
    check_engine,
    engine_layer,
    fit_grid,
    float_layer,
    geometry,
    grid_of,
    quantize_matrix,
    weight_matrix,
)
from gansurvey.layers import CompressedLayer

#: Weight bit widths: 8, 6, 4, 3, 2 and 1 (binary; ternary is ``weight_bits=2, ternary=True``).
WEIGHT_BITS = (8, 6, 4, 3, 2, 1)
#: Bits a layer may get in ``per_layer_bits``: a weight bit width, or 32 (left in float32).
LAYER_BITS = (*WEIGHT_BITS, 32)
ACTIVATION_BITS = (None, 8)
GRANULARITIES = ("per-tensor", "per-channel", "per-group")
ROUNDINGS = ("nearest", "mse", "gptq")
#: Roundings that need calibration inputs (``example_input``).
CALIBRATED = ("gptq",)


@dataclass(frozen=True)
class QuantConfig(CompressConfig):
    """Quantize the weights (and optionally the inputs) of Linear, Conv2d and ConvTranspose2d layers.

    - ``weight_bits``: one of 8, 6, 4, 3, 2, 1 (1 = binary, ``+-alpha``); ``ternary=True`` (with 2 bits) stores
      ``{-alpha, 0, +alpha}``.
    - ``granularity``: ``per-tensor`` (one scale), ``per-channel`` (one per output channel) or ``per-group``
      (one per output channel and ``group_size`` input channels; it must divide each layer's input channels,
      and a layer with at most ``group_size`` inputs has one group).
    - ``symmetric``: zero at the middle of the grid (no zero points stored) or an integer zero point per scale.
    - ``rounding``: ``nearest``, ``mse`` (MSE-optimal clipping) or ``gptq`` (calibration-based).
    - ``activation_bits``: ``None`` (weight-only) or 8 (inputs of every quantized layer on a calibrated uint8
      grid); 8 and ``gptq`` need calibration inputs: ``example_input`` of :func:`quantize`.
    - ``layers``: module names to quantize; ``None`` = every Linear, Conv2d and ConvTranspose2d.
    - ``per_layer_bits``: ``((name, bits), ...)`` overriding ``weight_bits`` per layer (mixed precision, as
      :func:`allocate_bits` records it); bits 32 leaves a layer in float.
    - ``calibration``: how many samples of ``example_input`` calibrate ranges and GPTQ's Hessians.
    """

    family: ClassVar[str] = "precision"
    VERSION: ClassVar[int] = 1
    stage_rank: ClassVar[int] = 3
    stage_rule: ClassVar[str] = ("quantization works on float weights, so it comes after pruning and "
                                 "factorization and before encoding")

    weight_bits: int = 8
    granularity: str = "per-channel"
    group_size: int | None = None
    symmetric: bool = True
    rounding: str = "nearest"
    activation_bits: int | None = None
    ternary: bool = False
    layers: tuple[str, ...] | None = None
    per_layer_bits: tuple[tuple[str, int], ...] | None = None
    calibration: int = 64

    def __post_init__(self) -> None:
        _check_bits("weight_bits", self.weight_bits, WEIGHT_BITS)
        check_choice("granularity", self.granularity, GRANULARITIES)
        check_choice("rounding method", self.rounding, ROUNDINGS)
        if self.activation_bits not in ACTIVATION_BITS or isinstance(self.activation_bits, bool):
            raise GanSurveyError(f"unsupported activation_bits {self.activation_bits!r}; allowed: None "
                                 "(weight-only) or 8")
        if not isinstance(self.symmetric, bool):
            raise GanSurveyError(f"symmetric must be True or False, got {self.symmetric!r}")
        if not isinstance(self.ternary, bool):
            raise GanSurveyError(f"ternary must be True or False, got {self.ternary!r}")
        if self.ternary and (self.weight_bits != 2 or not self.symmetric):
            raise GanSurveyError(f"ternary weights take weight_bits=2 and symmetric=True, got weight_bits="
                                 f"{self.weight_bits}, symmetric={self.symmetric}")
        if self.granularity == "per-group":
            if self.group_size is None:
                raise GanSurveyError("granularity 'per-group' needs group_size (input channels per scale), "
                                     "got None; allowed: a positive integer dividing the layers' input channels")
            check_number("group_size", self.group_size, minimum=1, integer=True)
        elif self.group_size is not None:
            raise GanSurveyError(f"group_size={self.group_size!r} applies to granularity 'per-group' only, not "
                                 f"{self.granularity!r}; allowed: None")
        check_number("calibration", self.calibration, minimum=1, integer=True)
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(n, str) for n in self.layers):
                raise GanSurveyError(f"layers must be a tuple of module names or None, got {self.layers!r}")
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.per_layer_bits is not None:
            pairs = self.per_layer_bits.items() if isinstance(self.per_layer_bits, dict) else self.per_layer_bits
            try:
                pairs = tuple((name, bits) for name, bits in pairs)
            except (TypeError, ValueError):
                raise GanSurveyError(f"per_layer_bits must be (layer name, bits) pairs, got "
                                     f"{self.per_layer_bits!r}") from None
            for name, bits in pairs:
                if not isinstance(name, str):
                    raise GanSurveyError(f"per_layer_bits names layers by string, got {name!r}")
                _check_bits(f"per_layer_bits[{name!r}]", bits, LAYER_BITS)
                if self.ternary and bits not in (2, 32):
                    raise GanSurveyError(f"per_layer_bits[{name!r}]={bits} with ternary=True; allowed: 2 or 32")
            object.__setattr__(self, "per_layer_bits", pairs)

    @property
    def method(self) -> str:  # type: ignore[override]
        """The method within the family: ``mixed``, ``ternary``, ``binary`` or ``uniform`` (bits alike)."""
        if self.per_layer_bits:
            return "mixed"
        return "ternary" if self.ternary else ("binary" if self.weight_bits == 1 and self.symmetric else "uniform")

    @property
    def label(self) -> str:
        """A short display label: ``w4 per-channel nearest`` (``+a8``, ``ternary``, ``mixed``)."""
        bits = "ternary" if self.ternary else ("mixed" if self.per_layer_bits else f"w{self.weight_bits}")
        gran = f"per-group {self.group_size}" if self.granularity == "per-group" else self.granularity
        act = "+a8" if self.activation_bits else ""
        return f"{bits}{act} {gran} {self.rounding}{'' if self.symmetric else ' asym'}"


def _check_bits(what: str, bits: Any, allowed: tuple[int, ...]) -> int:
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or bits not in allowed:
        kind = "" if isinstance(bits, numbers.Integral) and not isinstance(bits, bool) else \
            f" ({type(bits).__name__}; bits are integers)"
        raise GanSurveyError(f"unsupported {what} {bits!r}{kind}; allowed: {', '.join(map(str, allowed))}")
    return int(bits)


def quantize(model: nn.Module, config: QuantConfig | Sequence[QuantConfig], example_input: Any = None) -> nn.Module:
    """A quantized copy of ``model`` (any module: a generator of the package or one it never built).

    Args:
        model: the float module; never modified.
        config: a :class:`QuantConfig` (or a list of them applied in order).
        example_input: calibration inputs, a batch the model accepts (its first ``config.calibration``
            samples are used); needed by ``activation_bits=8`` and ``rounding="gptq"``.

    Returns:
        The copy, its layers replaced by :class:`~gansurvey.compress.quantized_layers.QuantizedLayer` s;
        ``stored_bytes`` falls to about ``bits/32`` of the float model plus scales.

    Example::

        q4 = quantize(generator, QuantConfig(weight_bits=4, granularity="per-channel"))
        sqnr_db(generator(z), q4(z))  # about 20 dB for a DCGAN
    """
    check_family_configs("quantize", model, config, (QuantConfig,))
    return compress(model, config, example_input)


@register(QuantConfig)
def _quantize_handler(model: nn.Module, config: QuantConfig, example_input: Any) -> nn.Module:
    targets = _targets(model, config)
    if not targets:
        return model
    geos = {name: geometry(module, config.granularity, config.group_size, name)
            for name, (module, _) in targets.items()}
    stats = _calibrate(model, targets, geos, config, example_input)
    for name, (module, bits) in targets.items():
        layer = quantize_layer(module, geos[name], config, bits, **stats.get(name, {}))
        if not name:  # the model is a single layer
            return layer
        _set_module(model, name, layer)
    return model


def _targets(model: nn.Module, config: QuantConfig) -> dict[str, tuple[nn.Module, int]]:
    """The layers to quantize, by name, with their bits (layers inside quantized layers are never touched)."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, QUANTIZABLE_TYPES) and not isinstance(module, QuantizedLayer):
            if not any(name.startswith(f"{outer}.") for outer in _opaque(model)):
                found[name] = module
    if config.layers is not None:
        for name in config.layers:
            if name not in found:
                raise GanSurveyError(f"layer {name!r} is not a quantizable layer (Linear, Conv2d, ConvTranspose2d) "
                                     f"of {type(model).__name__}; allowed: {', '.join(map(repr, found))}")
        found = {name: found[name] for name in config.layers}
    bits = dict(config.per_layer_bits or ())
    for name in bits:
        if name not in found:
            raise GanSurveyError(f"per_layer_bits names {name!r}, not a layer this config quantizes; allowed: "
                                 f"{', '.join(map(repr, found))}")
    return {name: (module, bits.get(name, config.weight_bits)) for name, module in found.items()
            if bits.get(name, config.weight_bits) != 32}


def _opaque(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, (QuantizedLayer, FakeQuantLayer)) and name]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def calibration_batch(example_input: Any, count: int, why: str) -> Any:
    """The first ``count`` samples of ``example_input``; a clear error when there is none."""
    if example_input is None:
        raise GanSurveyError(f"{why} needs calibration data: pass example_input (a batch of the model's inputs, "
                             "e.g. bench.example_input(64)) to quantize/compress")
    if isinstance(example_input, Tensor):
        return example_input[:count]
    if isinstance(example_input, (tuple, list)):
        return type(example_input)(x[:count] if isinstance(x, Tensor) else x for x in example_input)
    raise GanSurveyError(f"example_input must be a tensor or a tuple of tensors, got {type(example_input).__name__}")


def _calibrate(model: nn.Module, targets: dict, geos: dict[str, Geometry], config: QuantConfig,
               example_input: Any) -> dict[str, dict[str, Any]]:
    """Input ranges (activation quantization) and Hessians (GPTQ) of the target layers, from the float model."""
    need_range = config.activation_bits is not None
    need_hessian = config.rounding in CALIBRATED
    if not (need_range or need_hessian):
        return {}
    why = "activation_bits=8" if need_range else f"rounding {config.rounding!r}"
    batch = calibration_batch(example_input, config.calibration, why)
    stats: dict[str, dict[str, Any]] = {name: {} for name in targets}

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple) -> None:
            x = inputs[0].detach().float()
            if need_range:
                lo, hi = stats[name].get("act_range", (float("inf"), float("-inf")))
                stats[name]["act_range"] = (min(lo, float(x.min())), max(hi, float(x.max())))
            if need_hessian:
                h = input_hessian(module, geos[name], x)
                stats[name]["hessians"] = stats[name].get("hessians", 0) + h
        return record

    handles = [module.register_forward_pre_hook(hook(name)) for name, (module, _) in targets.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            chunks = batch.split(16) if isinstance(batch, Tensor) else [batch]
            for chunk in chunks:
                model(*chunk) if isinstance(chunk, (tuple, list)) else model(chunk)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return stats


def input_hessian(module: nn.Module, geo: Geometry, x: Tensor) -> Tensor:
    """``sum x x^T`` over the GEMM rows of the layer's input ``x``, one ``(K, K)`` matrix per convolution group."""
    if geo.kind == "linear":
        cols = x.reshape(-1, geo.cols)[None]
    elif geo.kind == "conv2d":
        padding = module.padding
        if module.padding_mode != "zeros":
            x, padding = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode), 0
        if isinstance(padding, str):  # "same" / "valid"
            padding = 0 if padding == "valid" else tuple(d * (k - 1) // 2 for d, k in zip(
                module.dilation, module.kernel_size, strict=True))
        unfolded = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=padding, stride=module.stride)
        cols = unfolded.reshape(x.shape[0], geo.groups, geo.cols, -1).permute(1, 0, 3, 2).reshape(
            geo.groups, -1, geo.cols)
    else:
        pixels = x.permute(0, 2, 3, 1).reshape(-1, geo.groups, geo.cols)
        cols = pixels.transpose(0, 1)
    return cols.transpose(1, 2).double() @ cols.double()


def quantize_layer(module: nn.Module, geo: Geometry, config: QuantConfig, bits: int | None = None,
                   act_range: tuple[float, float] | None = None,
                   hessians: Tensor | None = None) -> QuantizedLayer:
    """One float layer as a :class:`QuantizedLayer` under ``config`` (``bits`` overrides its weight bits)."""
    grid = grid_of(bits or config.weight_bits, config.symmetric, config.ternary)
    matrix = weight_matrix(module.weight.detach().float(), geo)
    rounding = "mse" if config.rounding == "gptq" else config.rounding
    scale, zero = fit_grid(matrix, geo, grid, rounding)
    codes = quantize_matrix(matrix, geo, grid, scale, zero, hessians if config.rounding == "gptq" else None)
    return QuantizedLayer.from_float(module, geo, grid, codes, scale, zero, config.activation_bits, act_range)


# ---------------------------------------------------------------------------------------------- measuring


def sqnr_db(reference: Tensor, approx: Tensor) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(|ref|^2 / |ref - approx|^2)`` in dB (``inf`` if equal).

    >>> round(sqnr_db(torch.ones(4), torch.full((4,), 1.1)), 1)
    20.0
    """
    ref, err = reference.detach().double(), (reference.detach().double() - approx.detach().double())
    noise = float(err.pow(2).sum())
    return float("inf") if noise == 0 else float(10 * torch.log10(ref.pow(2).sum() / noise))


def output_sqnr(model: nn.Module, quantized: nn.Module, example_input: Any) -> float:
    """:func:`sqnr_db` of ``quantized``'s output against ``model``'s on ``example_input`` (eval mode)."""
    with torch.no_grad():
        return sqnr_db(copy.deepcopy(model).eval()(example_input), copy.deepcopy(quantized).eval()(example_input))


def quantized_bytes(model: nn.Module) -> int:
    """Raw bytes of the state of the quantized layers of ``model`` (codes, scales, zeros, bias, act. params)."""
    total = 0
    for module in model.modules():
        if isinstance(module, QuantizedLayer):
            total += sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return total


def layer_sensitivity(model: nn.Module, example_input: Any, bits: Sequence[int] = (2, 4, 8),
                      base: QuantConfig | None = None, score: Callable[[nn.Module], float] | None = None,
                      ) -> pd.DataFrame:
    """How much each layer alone hurts when quantized to each of ``bits``: one row per (layer, bits).

    Args:
        model: the float model.
        example_input: inputs for the default score (and calibration when ``base`` needs it).
        bits: the candidate bit widths (a layer may also be given 32: left in float, sensitivity 0).
        base: the other settings (granularity, rounding...); ``QuantConfig()`` by default.
        score: ``score(model) -> float``, lower is better (e.g. a benchmark's FID). ``None``: the relative output
            noise power ``|y_q - y|^2 / |y|^2`` on ``example_input`` (``10**(-SQNR/10)``), a fast proxy.

    Returns:
        Columns ``layer``, ``bits``, ``sensitivity`` (score of the model with only that layer quantized minus the
        float model's) and ``bytes`` (that layer's quantized state).

    Example::

        sens = layer_sensitivity(teacher, bench.example_input(32), bits=(2, 4, 8))
        config = allocate_bits(sens, budget_bytes=quantized_bytes(quantize(teacher, QuantConfig(4))))
    """
    base = base or QuantConfig()
    bits = [_check_bits("sensitivity bits", b, LAYER_BITS) for b in bits]
    model = copy.deepcopy(model).eval()
    if score is None:
        with torch.no_grad():
            reference = model(example_input)

        def score(m: nn.Module) -> float:
            with torch.no_grad():
                return 10 ** (-sqnr_db(reference, m(example_input)) / 10)

    floor = score(model)
    rows = []
    for name, (module, _) in _targets(model, dataclasses.replace(base, per_layer_bits=None)).items():
        float_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
        for b in bits:
            if b == 32:
                rows.append(dict(layer=name, bits=32, sensitivity=0.0, bytes=float_bytes))
                continue
            single = dataclasses.replace(base, weight_bits=b, layers=(name,), per_layer_bits=None,
                                         ternary=base.ternary and b == 2)
            quantized = compress(model, single, example_input).eval()
            rows.append(dict(layer=name, bits=b, sensitivity=float(score(quantized) - floor),
                             bytes=quantized_bytes(quantized)))
    return pd.DataFrame(rows, columns=["layer", "bits", "sensitivity", "bytes"])


def allocate_bits(sensitivity: pd.DataFrame, budget_bytes: int, base: QuantConfig | None = None,
                  resolution: int = 4096) -> QuantConfig:
    """Bits per layer with the least total sensitivity whose quantized layers fit in ``budget_bytes``.

    A multiple-choice knapsack solved exactly by dynamic programming on bytes rounded up to ``budget_bytes /
    resolution`` (so the allocation always fits), with sensitivities taken as additive (noise powers add when
    the layers' errors are independent); every uniform allocation that fits is a candidate too, so the result is
    never worse than uniform bits on the table's own numbers.

    Args:
        sensitivity: rows ``layer``, ``bits``, ``sensitivity``, ``bytes`` (see :func:`layer_sensitivity`).
        budget_bytes: the most bytes the quantized layers may take (:func:`quantized_bytes` of a uniform model
            gives a matched budget).
        base: the other settings of the returned config.
        resolution: byte buckets of the dynamic programme.

    Returns:
        ``base`` with ``per_layer_bits`` set (the allocation, recorded in the config and in every record).

    Example::

        config = allocate_bits(sens, quantized_bytes(quantize(teacher, QuantConfig(4))))
        config.per_layer_bits  # (('net.0', 4), ('net.3', 8), ...)
    """
    base = base or QuantConfig()
    check_number("budget_bytes", budget_bytes, minimum=1)
    check_number("resolution", resolution, minimum=1, integer=True)
    need = {"layer", "bits", "sensitivity", "bytes"}
    if not isinstance(sensitivity, pd.DataFrame) or not need <= set(sensitivity.columns) or not len(sensitivity):
        raise GanSurveyError(f"sensitivity must be layer_sensitivity's table with columns {sorted(need)}")
    options = {name: [(int(r.bits), float(r.sensitivity), int(r.bytes)) for r in rows.itertuples()]
               for name, rows in sensitivity.groupby("layer", sort=False)}
    least = sum(min(o[2] for o in opts) for opts in options.values())
    if least > budget_bytes:
        raise GanSurveyError(f"budget_bytes={budget_bytes} is below the smallest allocation of these bit widths "
                             f"({least} bytes); allowed: {least} or more")
    unit = budget_bytes / resolution
    best = np.zeros(resolution + 1)
    choices = []
    for opts in options.values():
        new = np.full(resolution + 1, np.inf)
        pick = np.zeros(resolution + 1, dtype=int)
        for i, (_, sens, nbytes) in enumerate(opts):
            w = int(np.ceil(nbytes / unit - 1e-9))
            if w > resolution:
                continue
            shifted = np.full(resolution + 1, np.inf)
            shifted[w:] = best[:resolution + 1 - w] + sens
            better = shifted < new
            new[better], pick[better] = shifted[better], i
        best = new
        choices.append(pick)
    candidates = []
    if np.isfinite(best[-1]):
        alloc, b = {}, resolution
        for name, opts, pick in reversed(list(zip(options, options.values(), choices, strict=True))):
            i = int(pick[b])
            alloc[name] = opts[i]
            b -= int(np.ceil(opts[i][2] / unit - 1e-9))
        candidates.append({n: alloc[n] for n in options})
    for bits in {o[0] for opts in options.values() for o in opts}:
        uniform = {n: next((o for o in opts if o[0] == bits), None) for n, opts in options.items()}
        if all(uniform.values()) and sum(o[2] for o in uniform.values()) <= budget_bytes:
            candidates.append(uniform)
    if not candidates:
        raise GanSurveyError(f"no allocation fits budget_bytes={budget_bytes} at resolution {resolution}; "
                             "raise resolution or the budget")
    chosen = min(candidates, key=lambda a: (sum(o[1] for o in a.values()), sum(o[2] for o in a.values())))
    return dataclasses.replace(base, per_layer_bits=tuple((n, o[0]) for n, o in chosen.items()))


# ---------------------------------------------------------------------------------------------- QAT


def prepare_qat(model: nn.Module, config: QuantConfig, example_input: Any = None) -> nn.Module:
    """A copy of ``model`` for quantization-aware training: each target layer wrapped in a
    :class:`~gansurvey.compress.quantized_layers.FakeQuantLayer` whose forward uses fake-quantized weights (and,
    with ``activation_bits=8``, inputs on a grid calibrated on ``example_input``), with straight-through
    gradients. Train it with the shared trainer, then :func:`convert_qat`.

    Example::

        qat = prepare_qat(teacher, QuantConfig(weight_bits=2))
        tuned = experiments.finetune(qat, bench, steps, discriminator).model
        packed = convert_qat(tuned, QuantConfig(weight_bits=2))
    """
    if not isinstance(config, QuantConfig):
        raise GanSurveyError(f"prepare_qat needs a QuantConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise GanSurveyError(f"prepare_qat needs a torch module, got {type(model).__name__}")
    out = copy.deepcopy(model)
    targets = _targets(out, config)
    geos = {name: geometry(module, config.granularity, config.group_size, name)
            for name, (module, _) in targets.items()}
    plain = dataclasses.replace(config, rounding="nearest") if config.rounding in CALIBRATED else config
    stats = _calibrate(out, targets, geos, plain, example_input)
    for name, (module, bits) in targets.items():
        grid = grid_of(bits, config.symmetric, config.ternary)
        wrapped = FakeQuantLayer(module, geos[name], grid, config.rounding, stats.get(name, {}).get("act_range"))
        if not name:
            return wrapped
        _set_module(out, name, wrapped)
    return out


def convert_qat(model: nn.Module, config: QuantConfig, example_input: Any = None) -> nn.Module:
    """The packed quantized model of a model prepared by :func:`prepare_qat` (and trained): the fake-quantized
    layers become :class:`QuantizedLayer` s holding the same numbers; the input is not modified.

    With activation quantization the input grids calibrated before training are kept.
    """
    if not isinstance(config, QuantConfig):
        raise GanSurveyError(f"convert_qat needs a QuantConfig, got {type(config).__name__}")
    out = copy.deepcopy(model)
    wrapped = {name: m for name, m in out.named_modules() if isinstance(m, FakeQuantLayer)}
    if not wrapped:
        raise GanSurveyError("convert_qat needs a model made by prepare_qat (it has no fake-quantized layers)")
    for name, fq in wrapped.items():
        act = None
        if fq.act_qparams is not None:
            scale, zero = float(fq.act_qparams[0]), float(fq.act_qparams[1])
            act = (-zero * scale, (255 - zero) * scale)
        qconfig = dataclasses.replace(config, rounding="nearest" if config.rounding in CALIBRATED
                                      else config.rounding, per_layer_bits=None)
        layer = quantize_layer(fq.layer, fq.geo, qconfig, fq.grid.bits, act_range=act)
        if not name:
            out = layer
            break
        _set_module(out, name, layer)
    chain = list(getattr(model, "compression", None) or [])
    out.compression = chain + [config.to_dict()]
    return out


# ---------------------------------------------------------------------------------------------- integer engines


def to_integer_engine(model: nn.Module, example_input: Any, engine: str = "fbgemm") -> nn.Module:
    """A copy of a quantized model whose quantized layers run on one of PyTorch's integer CPU engines.

    Each :class:`QuantizedLayer` becomes a ``torch.ao.nn.quantized`` module (uint8 inputs, int8 weights, int32
    accumulation; Jacob et al. 2018) between a quantize and a dequantize, with input and output ranges
    calibrated on ``example_input``; other layers stay float. Weights are int8 whatever the stored bit width
    (the engines have no narrower format), per output channel for Linear and Conv2d and per tensor for
    ConvTranspose2d (the engines refuse per-channel transposed convolutions). For CPU latency comparisons;
    the stored model is the packed one.

    Args:
        model: a model made by :func:`quantize` (on the CPU).
        example_input: calibration inputs (a batch).
        engine: ``fbgemm`` or ``qnnpack`` (``x86``/``onednn`` compute ConvTranspose2d wrongly here).

    Example::

        fast = to_integer_engine(quantize(teacher, QuantConfig(8)), bench.example_input(32))
    """
    check_engine(engine)
    out = copy.deepcopy(model).cpu().eval()
    layers = {name: m for name, m in out.named_modules() if isinstance(m, QuantizedLayer)}
    if not layers:
        raise GanSurveyError("to_integer_engine needs a quantized model (made by quantize); this one has no "
                             "quantized layers")
    if example_input is None:
        raise GanSurveyError("to_integer_engine needs calibration data: pass example_input (a batch of inputs)")
    ranges: dict[str, list[float]] = {n: [float("inf"), float("-inf"), float("inf"), float("-inf")] for n in layers}

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            r = ranges[name]
            r[0], r[1] = min(r[0], float(inputs[0].min())), max(r[1], float(inputs[0].max()))
            r[2], r[3] = min(r[2], float(output.min())), max(r[3], float(output.max()))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    try:
        with torch.no_grad():
            out(example_input)
    finally:
        for h in handles:
            h.remove()
    for name, layer in layers.items():
        r = ranges[name]
        with warnings.catch_warnings():
            # torch announces that its quantized tensor types will go; they are what these engines run on
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            fast = engine_layer(layer, (r[0], r[1]), (r[2], r[3]), engine)
        if not name:
            return fast
        _set_module(out, name, fast)
    return out


def to_fused_engine(model: nn.Module, example_input: Tensor, engine: str = "fbgemm") -> FusedEngineModel:
    """A copy of a quantized model run by one of PyTorch's integer CPU engines as one static-quantized graph.

    What PyTorch's FX static quantization does to a float CNN (Jacob et al. 2018), applied to the quantized
    model's own weights: each :class:`QuantizedLayer` becomes its float layer (weights dequantized), every batch
    norm is folded into the convolution before it and a reflection pad into the convolution after it, then
    ``prepare_fx``/``convert_fx`` with the engine's default mapping (uint8 activations calibrated on
    ``example_input`` by histogram observers, int8 weights per output channel, per tensor for ConvTranspose2d)
    fuse the ReLUs and keep the activations in uint8 between layers, residual additions included. Unlike
    :func:`to_integer_engine`, no layer pays a float round trip of its input and output. Layers the quantized
    model kept in float stay float. The folded, re-rounded int8 weights are not the stored codes: compare the
    outputs (:func:`output_sqnr`) before timing this form in the stored model's place.

    Args:
        model: a model made by :func:`quantize` (on the CPU) whose compressed layers are all quantized layers.
        example_input: calibration inputs (a batch).
        engine: ``fbgemm`` or ``qnnpack``.

    Raises:
        GanSurveyError: no quantized layer, another kind of compressed layer, no calibration data, or a model
            the FX tracer or the engine cannot take (the reason named).
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    check_engine(engine)
    if example_input is None:
        raise GanSurveyError("to_fused_engine needs calibration data: pass example_input (a batch of inputs)")
    out = copy.deepcopy(model).cpu().eval()
    quantized = [name for name, m in out.named_modules() if isinstance(m, QuantizedLayer)]
    if not quantized:
        raise GanSurveyError("to_fused_engine needs a quantized model (made by quantize); this one has no "
                             "quantized layers")
    others = [f"{name or 'the model'} ({type(m).__name__})" for name, m in out.named_modules()
              if isinstance(m, (CompressedLayer, FakeQuantLayer)) and not isinstance(m, QuantizedLayer)]
    if others:
        raise GanSurveyError(f"to_fused_engine takes a model whose compressed layers are all quantized layers; "
                             f"{others[0]} is not one (the engine has no format for it)")
    for name in quantized:
        layer = float_layer(out.get_submodule(name))
        layer._quantized = True  # read below (and kept by the folds): which layers the engine takes
        if name:
            _set_module(out, name, layer)
        else:
            out = layer
    _fold_for_engine(out)
    mapping = get_default_qconfig_mapping(engine)
    for name, m in out.named_modules():
        if isinstance(m, QUANTIZABLE_TYPES) and not getattr(m, "_quantized", False):
            mapping.set_module_name(name, None)  # a layer the quantized model kept in float stays float
    torch.backends.quantized.engine = engine
    try:
        with warnings.catch_warnings():
            # torch announces that torch.ao.quantization and its quantized tensors will go; they are what these
            # engines run on
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", module=r"torch\.ao")
            prepared = prepare_fx(out, mapping, example_inputs=(example_input[:1],))
            with torch.no_grad():
                prepared(example_input)
            graph = convert_fx(prepared)
    except Exception as exc:  # noqa: BLE001 - FX and the engines raise many types; the reason is reported
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GanSurveyError(f"the {engine} engine cannot run this model as one quantized graph: {reason}") from exc
    return FusedEngineModel(graph, engine).eval()


def to_int4_cpu_engine(model: nn.Module) -> nn.Module:
    """A copy of a quantized model whose 4-bit Linear layers run PyTorch's packed int4 weight-only CPU matmul
    (:class:`~gansurvey.compress.quantized_layers.Int4PackLinear`: 4 bits per weight in memory, float32
    activations; the same numbers as the stored layers up to float rounding). Other layers stay as they are.

    Raises:
        GanSurveyError: this PyTorch lacks the op, or no layer fits it (a 4-bit Linear with a multiple of 16
            outputs and scale groups of 32, 64, 128 or 256 input columns, or per channel with such a group
            dividing its inputs).
    """
    from gansurvey.kernels import cpu

    if not cpu.available():
        raise GanSurveyError("this PyTorch build lacks the packed int4 CPU matmul (_weight_int4pack_mm_for_cpu)")
    out = copy.deepcopy(model).cpu().eval()
    fits = [name for name, m in out.named_modules()
            if isinstance(m, QuantizedLinear) and cpu.int4_group(m.quantized_weight()) is not None]
    if not fits:
        raise GanSurveyError("no layer fits the packed int4 CPU matmul: it takes 4-bit Linear layers with a "
                             f"multiple of {cpu.N_MULTIPLE} outputs and scale groups of "
                             f"{', '.join(map(str, cpu.GROUP_SIZES))} input columns")
    for name in fits:
        layer = Int4PackLinear(out.get_submodule(name))
        if not name:
            return layer
        _set_module(out, name, layer)
    return out


def _fold_for_engine(module: nn.Module) -> None:
    """Fold, inside every ``nn.Sequential`` of ``module`` (in place; a folded module leaves its Sequential, the
    other names stay), each eval-mode batch norm into the convolution before it and each symmetric
    ``ReflectionPad2d`` into the unpadded ``Conv2d`` after it (``padding_mode='reflect'``): exact in float, and
    what lets the engine fuse a convolution with its ReLU and keep the activations in int8 across them. A folded
    layer keeps the ``_quantized`` mark of the layer it replaces."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.children():
        _fold_for_engine(child)
    if not isinstance(module, nn.Sequential):
        return
    keys, gone = list(module._modules), set()
    for a, b in zip(keys, keys[1:], strict=False):
        if a in gone:
            continue
        first, second = module._modules[a], module._modules[b]
        if (isinstance(first, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(second, nn.BatchNorm2d)
                and second.track_running_stats and second.running_mean is not None
                and first.out_channels == second.num_features):
            module._modules[a] = fuse_conv_bn_eval(first, second, transpose=isinstance(first, nn.ConvTranspose2d))
            gone.add(b)
        elif (isinstance(first, nn.ReflectionPad2d) and isinstance(second, nn.Conv2d)
              and second.padding_mode == "zeros" and tuple(second.padding) == (0, 0)
              and first.padding[0] == first.padding[1] and first.padding[2] == first.padding[3]):
            conv = nn.Conv2d(second.in_channels, second.out_channels, second.kernel_size, second.stride,
                             (first.padding[2], first.padding[0]), second.dilation, second.groups,
                             second.bias is not None, "reflect")
            conv.load_state_dict(second.state_dict())
            conv._quantized = getattr(second, "_quantized", False)
            module._modules[b] = conv.eval()
            gone.add(a)
    for key in gone:
        del module._modules[key]
