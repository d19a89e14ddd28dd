"""What a generator costs: parameters, MACs, stored bytes, memory traffic and a 45 nm energy estimate.

Counting rules (the same for dense and compressed models):

* **params** count stored weight elements: every parameter plus every persistent buffer, except the running
  statistics of normalization layers (``running_mean``, ``running_var``, ``num_batches_tracked``) and boolean
  buffers (pruning masks are bookkeeping, not weights). A sparse tensor counts its stored values. A compressed
  layer (:class:`gansurvey.layers.CompressedLayer`) says how many weights it stores with ``stored_params()``, and
  that number replaces the count of its whole subtree (4-bit codes packed two to a byte count as two).
* **precision**: a compressed layer's ``compute_dtype`` prices its MACs in the energy model.
* **MACs** are read from the aten ops the forward runs (``torch.utils.flop_counter``, MACs = FLOPs / 2).
  Kernels launched outside torch's dispatcher (eager Triton launches) are invisible to it: count on CPU, where
  gansurvey's kernels run their plain-torch reference.
* **stored bytes** are the length of ``torch.save(model.state_dict())``: what is really serialized.
* **weight traffic** is the raw bytes of all stored state, each read once from DRAM per forward;
  **activation traffic** is each leaf layer's inputs read once and outputs written once.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from gansurvey.checks import check_choice
from gansurvey.layers import is_compressed
from gansurvey.metrics.energy import EnergyTable, load_energy_table, precision_of

CONVENTIONS = ("true", "torchprofile")
ACTIVATION_MEMORIES = ("sram", "dram")
RUNNING_STATS = frozenset({"running_mean", "running_var", "num_batches_tracked"})

_CONV_OPS = (torch.ops.aten.convolution, torch.ops.aten._convolution, torch.ops.aten.cudnn_convolution,
             torch.ops.aten._slow_conv2d_forward, torch.ops.aten.convolution_overrideable)


# ---------------------------------------------------------------- tensors and state


def _tensor_bytes(t: torch.Tensor) -> int:
    """Raw bytes a tensor stores (a sparse tensor: its indices and values, not its dense size)."""
    if t.layout == torch.sparse_coo:
        return _tensor_bytes(t._indices()) + _tensor_bytes(t._values())
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return sum(_tensor_bytes(x) for x in (t.crow_indices(), t.col_indices(), t.values()))
    if t.layout in (torch.sparse_csc, torch.sparse_bsc):
        return sum(_tensor_bytes(x) for x in (t.ccol_indices(), t.row_indices(), t.values()))
    return t.numel() * t.element_size()


def _tensor_elements(t: torch.Tensor) -> int:
    """Stored elements of a tensor (a sparse tensor: its stored values)."""
    return t.values().numel() if t.layout != torch.strided else t.numel()


def _tensor_key(t: torch.Tensor) -> tuple:
    # Tied weights appear under two names; count the same memory once.
    if t.layout != torch.strided or t.device.type == "meta":
        return ("id", id(t))
    return (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()))


def _own_state(module: nn.Module, recurse: bool) -> dict[str, torch.Tensor]:
    """The tensors of ``module.state_dict()``; only those outside its children when ``recurse`` is False."""
    state = module.state_dict(keep_vars=True)
    children = {name for name, _ in module.named_children()}
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if not recurse and key.split(".", 1)[0] in children:
            continue
        out[key] = value
    return out


def _raw_bytes(tensors: dict[str, torch.Tensor]) -> int:
    seen, total = set(), 0
    for t in tensors.values():
        key = _tensor_key(t)
        if key not in seen:
            seen.add(key)
            total += _tensor_bytes(t)
    return total


def state_bytes(module: nn.Module, recurse: bool = True) -> int:
    """Raw tensor bytes of ``module``'s state dict (with its children's unless ``recurse`` is False).

    No serialization overhead; tensors shared under two names count once; running statistics are included
    (they are stored and read at inference).
    """
    return _raw_bytes(_own_state(module, recurse))


def stored_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size of what is actually serialized."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def weight_traffic_bytes(model: nn.Module) -> int:
    """Bytes read from DRAM per forward under the cost model: all stored state, each byte once."""
    return state_bytes(model)


def _direct_weight_elements(module: nn.Module, seen: set) -> int:
    total = 0
    tensors = [t for t in module._parameters.values() if t is not None]
    skipped = RUNNING_STATS | module._non_persistent_buffers_set
    tensors += [t for name, t in module._buffers.items() if t is not None and name not in skipped]
    for t in tensors:
        key = _tensor_key(t)
        if t.dtype != torch.bool and key not in seen:
            seen.add(key)
            total += _tensor_elements(t)
    return total


def _subtree_params(module: nn.Module, seen: set, seen_modules: set) -> int:
    if id(module) in seen_modules:
        return 0
    seen_modules.add(id(module))
    if is_compressed(module):
        return int(module.stored_params())
    return _direct_weight_elements(module, seen) + sum(
        _subtree_params(child, seen, seen_modules) for child in module.children())


def count_params(model: nn.Module) -> int:
    """Stored weight elements: parameters plus persistent buffers that are not running statistics.

    See the module docstring for the rule and for compressed layers.
    """
    return _subtree_params(model, set(), set())


# ---------------------------------------------------------------- tracing one forward


def _torchprofile_conv_flops(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args,
                             out_shape=None, **kwargs) -> int:
    """FLOPs (2 x MACs) of a convolution under torchprofile's rule.

    torchprofile multiplies the *output* size by the kernel size and by one channel dimension of the weight:
    the second one when the output's channels equal the weight's first dimension (always for a plain
    convolution, giving the true count), otherwise the first. A transposed weight is (in, out / groups, k...),
    so a transposed convolution is charged output elements x in_channels x kernel: about stride^2 times its
    true cost (for grouped ones with in != out also x groups).
    """
    in_channels = w_shape[1] if out_shape[1] == w_shape[0] else w_shape[0]
    return 2 * math.prod(out_shape) * in_channels * math.prod(w_shape[2:])


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; every submodule gets its own mode back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _as_args(example_input: Any) -> tuple:
    return tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)


def _activation_bytes(obj: Any) -> int:
    return sum(_tensor_bytes(t) for t in tree_leaves(obj) if isinstance(t, torch.Tensor))


@dataclass
class _Trace:
    """Per-module counts from one forward, keyed by ``id(module)``; FLOPs are inclusive of submodules."""

    flops: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    calls: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    input_bytes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    output_bytes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    output_dtype: dict[int, torch.dtype] = field(default_factory=dict)
    total_flops: int = 0


def _trace(model: nn.Module, example_input: Any, convention: str = "true") -> _Trace:
    check_choice("MAC convention", convention, CONVENTIONS)
    mapping = {op: _torchprofile_conv_flops for op in _CONV_OPS} if convention == "torchprofile" else {}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    trace = _Trace()
    starts: dict[int, list[int]] = defaultdict(list)

    def before(module, inputs):
        starts[id(module)].append(counter.get_total_flops())

    def after(module, inputs, output):
        key = id(module)
        trace.flops[key] += counter.get_total_flops() - starts[key].pop()
        trace.calls[key] += 1
        trace.input_bytes[key] += _activation_bytes(inputs)
        trace.output_bytes[key] += _activation_bytes(output)
        first = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
        if first is not None:
            trace.output_dtype[key] = first.dtype

    handles = []
    try:
        for module in {id(m): m for m in model.modules()}.values():
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
        with _evaluating(model), counter:
            model(*_as_args(example_input))
    finally:
        for handle in handles:
            handle.remove()
    trace.total_flops = counter.get_total_flops()
    return trace


def count_macs(model: nn.Module, example_input: Any, convention: str = "true") -> int:
    """Multiply-accumulates of one forward of ``example_input`` (a tensor, or a tuple of positional inputs).

    ``convention="true"`` counts what is computed (a transposed convolution costs input elements x
    out_channels / groups x kernel). ``"torchprofile"`` charges transposed convolutions the way torchprofile
    does (output elements x in_channels x kernel, see :func:`_torchprofile_conv_flops`), the MACs most
    GAN-compression papers report; everything else is counted as in ``"true"``. torchprofile's small
    elementwise charges for instance/layer norm and leaky ReLU are not reproduced (well under 1% of a conv
    generator). Runs in eval mode under ``torch.no_grad`` and restores each submodule's training mode.
    """
    return _trace(model, example_input, convention).total_flops // 2


def activation_traffic_bytes(model: nn.Module, example_input: Any) -> int:
    """Activation bytes moved per forward: every leaf layer's inputs read once and outputs written once."""
    return sum(row["input_bytes"] + row["output_bytes"] for row in _layer_costs(model, example_input))


# ---------------------------------------------------------------- per-layer breakdown and energy


def _rows(model: nn.Module) -> Iterator[tuple[str, nn.Module, list[nn.Module], bool]]:
    """(name, module, children counted under it, folded) for every distinct module, depth first.

    A module is *folded* (one row for its whole subtree) when it has no children or is a compressed layer;
    otherwise its row holds only its own state and the work done outside its children.
    """
    seen: set[int] = set()

    def visit(name: str, module: nn.Module) -> Iterator:
        seen.add(id(module))
        children = [c for c in module.children() if id(c) not in seen]
        folded = not children or is_compressed(module)
        # Children shared with an earlier parent stay with that parent, so totals telescope exactly.
        own = [] if folded else children
        seen.update(id(c) for c in own)
        yield name, module, own, folded
        if not folded:
            for child_name, child in module.named_children():
                if any(child is c for c in own):
                    yield from visit(f"{name}.{child_name}" if name else child_name, child)

    yield from visit("", model)


def _row_precision(module: nn.Module, state: dict[str, torch.Tensor],
                   output_dtype: torch.dtype | None) -> str:
    """The precision a layer's MACs are charged at: a compressed layer's ``compute_dtype`` if set, else its
    largest tensor's, else its output's."""
    declared = module.compute_dtype if is_compressed(module) else None
    if declared is not None:
        return precision_of(declared)
    tensors = [t for t in state.values() if t.dtype != torch.bool]
    if tensors:
        return precision_of(max(tensors, key=_tensor_elements).dtype)
    return precision_of(output_dtype) if output_dtype is not None else "fp32"


_BREAKDOWN_COLUMNS = (
    "layer", "type", "calls", "macs", "params", "weight_bytes", "input_bytes", "output_bytes", "precision",
    "compute_uj", "weight_dram_uj", "activation_uj", "total_uj", "energy_verified",
)


def _layer_costs(model: nn.Module, example_input: Any) -> list[dict[str, Any]]:
    """The breakdown's rows without energy: name, type, calls, MACs, params, bytes, precision."""
    trace = _trace(model, example_input)
    records = []
    seen_params: set = set()
    for name, module, own_children, folded in _rows(model):
        key = id(module)
        state = _own_state(module, recurse=folded)
        flops = trace.flops.get(key, 0) - sum(trace.flops.get(id(c), 0) for c in own_children)
        params = (_subtree_params(module, seen_params, set()) if folded
                  else _direct_weight_elements(module, seen_params))
        calls = trace.calls.get(key, 0)
        if not state and (flops == 0 if not folded else calls == 0):
            continue
        records.append({
            "layer": name or "(model)", "type": type(module).__name__, "calls": calls, "macs": flops // 2,
            "params": params, "weight_bytes": _raw_bytes(state),
            "input_bytes": trace.input_bytes.get(key, 0) if folded else 0,
            "output_bytes": trace.output_bytes.get(key, 0) if folded else 0,
            "precision": _row_precision(module, state, trace.output_dtype.get(key)),
        })
    return records


def cost_breakdown(model: nn.Module, example_input: Any, energy: EnergyTable | None = None,
                   activations_in: str = "sram") -> pd.DataFrame:
    """One row per layer doing work in a forward of ``example_input``, with its cost and 45 nm energy.

    Columns: layer, type, calls, macs (true), params, weight_bytes (raw bytes of its state), input_bytes,
    output_bytes (activations), precision, and energies in microjoules: compute_uj (MACs x one mult + one add
    at the layer's precision), weight_dram_uj (each weight byte read once from DRAM), activation_uj (inputs
    read and outputs written once, in SRAM or DRAM per ``activations_in``), total_uj, and energy_verified
    (False when an UNVERIFIED reduced-precision row was used).

    Assumptions: the 45 nm table of Horowitz (ISSCC 2014) as printed in Han et al. (NIPS 2015, Fig. 1); a
    32-bit memory access's energy is spread evenly over its 4 bytes; no weight or activation reuse beyond that
    (no re-fetch, no cache hits for weights); bias adds, norms and activations cost no arithmetic energy. Leaf
    layers that hold no state and ran no ops still get a row (they move activations). Ops a container runs
    inline in its own forward are charged to its row as MACs, without activation bytes.
    """
    check_choice("activation memory", activations_in, ACTIVATION_MEMORIES)
    energy = energy if energy is not None else load_energy_table()
    act_pj = energy.sram_pj_per_byte() if activations_in == "sram" else energy.dram_pj_per_byte()
    records = _layer_costs(model, example_input)
    for row in records:
        compute = row["macs"] * energy.mac_pj(row["precision"]) * 1e-6
        weights = row["weight_bytes"] * energy.dram_pj_per_byte() * 1e-6
        acts = (row["input_bytes"] + row["output_bytes"]) * act_pj * 1e-6
        row.update(compute_uj=compute, weight_dram_uj=weights, activation_uj=acts,
                   total_uj=compute + weights + acts,
                   energy_verified=energy.mac_verified(row["precision"]) if row["macs"] else True)
    return pd.DataFrame.from_records(records, columns=list(_BREAKDOWN_COLUMNS))


def energy_estimate(model: nn.Module, example_input: Any, energy: EnergyTable | None = None,
                    activations_in: str = "sram") -> dict[str, Any]:
    """Energy of one forward of ``example_input`` under the cost model of :func:`cost_breakdown`.

    Returns compute_uj, weight_dram_uj, activation_uj, total_uj, memory_share (the memory part of the total),
    macs, weight_bytes, activation_bytes, activations_in, and verified (False when an UNVERIFIED row was
    used). Weight traffic does not grow with the batch, so energy per sample falls as the batch grows.
    """
    table = cost_breakdown(model, example_input, energy, activations_in)
    total = float(table["total_uj"].sum())
    memory = float(table["weight_dram_uj"].sum() + table["activation_uj"].sum())
    return {
        "compute_uj": float(table["compute_uj"].sum()),
        "weight_dram_uj": float(table["weight_dram_uj"].sum()),
        "activation_uj": float(table["activation_uj"].sum()),
        "total_uj": total,
        "memory_share": memory / total if total > 0 else 0.0,
        "macs": int(table["macs"].sum()),
        "weight_bytes": int(table["weight_bytes"].sum()),
        "activation_bytes": int(table["input_bytes"].sum() + table["output_bytes"].sum()),
        "activations_in": activations_in,
        "verified": bool(table["energy_verified"].all()),
    }
