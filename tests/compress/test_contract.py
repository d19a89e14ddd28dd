"""The compression contract: every registered config goes through the same checks.

A family that registers a config adds its case to ``CASES`` (a test fails until it does): a good config, the
generators it applies to, and bad field values with the words their error must contain.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings

import pytest
import torch
from torch import nn

import gansurvey as gs
from gansurvey import compress as C
from gansurvey.checks import GanSurveyError
from gansurvey.compress.base import UncompressedWarning
from tests.conftest import QUICK, TINY

# config type -> (good config, architectures it applies to, [(bad field values, words the error must contain)])
CASES = {
    C.MagnitudePruneConfig: (C.MagnitudePruneConfig(sparsity=0.5), tuple(TINY),
                             [({"sparsity": 1.0}, "sparsity"), ({"scope": "row"}, "'row'"),
                              ({"pattern": "3:4"}, "'3:4'")]),
    C.ChannelPruneConfig: (C.ChannelPruneConfig(ratio=0.5), tuple(TINY),
                           [({"ratio": -0.1}, "ratio"), ({"criterion": "l3"}, "'l3'")]),
    C.StudentConfig: (C.StudentConfig(width=0.5), tuple(TINY), [({"width": 0.0}, "width")]),
    C.EncodeConfig: (C.EncodeConfig(bits=4, coder="huffman"), tuple(TINY),
                     [({"bits": 9}, "bits must be an integer >= 1 and <= 8, got 9"), ({"coder": "lzw"}, "'lzw'"),
                      ({"init": "kmeans++"}, "'kmeans++'")]),
    C.QuantConfig: (C.QuantConfig(weight_bits=4, granularity="per-channel"), tuple(TINY),
                    [({"weight_bits": 5}, "unsupported weight_bits 5; allowed: 8, 6, 4, 3, 2, 1"),
                     ({"granularity": "per-row"}, "'per-row'"), ({"rounding": "adaround"}, "'adaround'"),
                     ({"activation_bits": 4}, "activation_bits 4")]),
    C.LowRankConfig: (C.LowRankConfig("svd", rank=0.5), tuple(TINY),
                      [({"method": "qr"}, "'qr'"), ({"rank": 0}, "rank 0"),
                       ({"rank": None, "energy": 1.5}, "energy must be a number in (0, 1]"),
                       ({"layers": ()}, "layers")]),
}


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_every_registered_config_has_a_contract_case():
    missing = set(C.registered_configs().values()) - set(CASES)
    assert not missing, f"add contract cases for {sorted(t.__name__ for t in missing)}"


@pytest.mark.parametrize("config_type", list(CASES), ids=lambda t: t.__name__)
def test_contract(config_type):
    config, architectures, bad = CASES[config_type]
    assert config.family in C.FAMILIES
    # to_dict round-trips, also through JSON (how records store it)
    data = config.to_dict()
    assert data["type"] == config_type.__name__ and data["version"] == config_type.VERSION
    assert C.config_from_dict(json.loads(json.dumps(data))) == config
    assert config_type.from_dict(data) == config
    first = dataclasses.fields(config)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, first, getattr(config, first))
    for arch in architectures:
        torch.manual_seed(0)
        model = TINY[arch]().eval()
        before, structure = _weights(model), repr(model)
        x = torch.randn(2, 1, 16, 16) if arch == "resnet" else model.sample_inputs(2, torch.Generator().manual_seed(1))
        out = C.compress(model, config, example_input=x)
        # a new module; the input untouched in weights and structure
        assert out is not model
        assert repr(model) == structure and not hasattr(model, "compression")
        assert all(torch.equal(before[k], v) for k, v in _weights(model).items())
        # same output shape, the chain recorded
        with torch.no_grad():
            assert out.eval()(x).shape == model(x).shape
        assert out.compression == [data]
        # chaining appends (a weight family's config applied again to its own output mostly changes nothing, and
        # says so with an UncompressedWarning: tested in test_base.py, not a concern here)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UncompressedWarning)
            again = C.compress(out, config, example_input=x) if config_type is not C.StudentConfig else None
        if again is not None:
            assert again.compression == [data, data]
    for fields, words in bad:
        with pytest.raises(GanSurveyError) as err:
            dataclasses.replace(config, **fields)
        assert words in str(err.value), (fields, str(err.value))


def test_measure_records_the_chain():
    bench = gs.get_benchmark("gaussians-mlp")
    g = bench.new_generator(width=0.25)
    pruned = C.prune(g, [C.ChannelPruneConfig(0.5), C.MagnitudePruneConfig(0.5)])
    record = gs.measure(pruned, bench, technique="both", profile=QUICK)
    assert record.family == "pruning" and record.method == "channel+magnitude"
    chain = record.settings["compression"]
    rebuilt = [C.config_from_dict(c) for c in chain]
    assert rebuilt == [C.ChannelPruneConfig(0.5), C.MagnitudePruneConfig(0.5)]
    assert gs.measure(g, bench, profile=QUICK).family == "baseline"


def test_family_label_is_one_spelling():
    chain = [c.to_dict() for c in (C.ChannelPruneConfig(0.5), C.StudentConfig(0.5), C.MagnitudePruneConfig(0.1))]
    assert C.chain_family(chain) == "pruning+distillation"
    assert C.chain_family([]) == "baseline"


def test_compress_refuses_what_it_cannot_apply():
    g = TINY["mlp"]()
    with pytest.raises(GanSurveyError, match="compress needs a torch module, got str"):
        C.compress("g", C.MagnitudePruneConfig(0.5))
    with pytest.raises(GanSurveyError, match="non-empty list"):
        C.compress(g, [])
    with pytest.raises(GanSurveyError, match=r"no compression is registered for .*DistillConfig.*registered: "):
        C.compress(g, C.DistillConfig())
    with pytest.raises(GanSurveyError, match="unknown config type 'Nope'"):
        C.config_from_dict({"type": "Nope"})
    with pytest.raises(GanSurveyError, match=r"version 99; this code reads version 1"):
        C.config_from_dict({**C.MagnitudePruneConfig(0.5).to_dict(), "version": 99})
    with pytest.raises(GanSurveyError, match=r"has no field\(s\) \['spars'\]"):
        C.config_from_dict({"type": "MagnitudePruneConfig", "spars": 0.5})
    with pytest.raises(GanSurveyError, match="prune needs a prune config, got StudentConfig"):
        C.prune(g, C.StudentConfig(0.5))
    copy.deepcopy(g)  # untouched and still usable
