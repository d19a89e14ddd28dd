import copy
import io

import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.compress import (
    IMPORTANCES,
    BNScaleImportance,
    ChannelPruneConfig,
    Importance,
    MagnitudeImportance,
    MagnitudePruneConfig,
    apply_masks,
    bake_masks,
    kept_channels,
    lottery_ticket,
    masks,
    prunable_layers,
    prune,
    random_reinit,
    sparsity,
    sparsity_report,
    to_sparse_storage,
)
from gansurvey.compress.sparse import decode_positions, encode_index
from gansurvey.metrics.cost import count_macs, count_params, stored_bytes
from gansurvey.models import generators as models
from gansurvey.train.gan import TrainConfig, UnconditionalTask, train_gan
from tests.conftest import TINY, tiny_generator


def inputs(model: nn.Module, n: int = 2) -> torch.Tensor:
    if isinstance(model, models.ResNetGenerator):
        return torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    return model.sample_inputs(n, torch.Generator().manual_seed(1))


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def zero_fraction(module: nn.Module) -> float:
    return float((module.weight == 0).float().mean())


# ---------------------------------------------------------------- unstructured magnitude pruning


@pytest.mark.parametrize("kind", list(TINY))
@pytest.mark.parametrize("target", [0.0, 0.3, 0.5, 0.9])
def test_layer_scope_reaches_the_sparsity_exactly_in_every_layer(kind, target):
    g = tiny_generator(kind)
    before = snapshot(g)
    pruned = prune(g, MagnitudePruneConfig(target, scope="layer"))
    assert_unchanged(g, before)
    for name, layer in prunable_layers(pruned).items():
        n = layer.weight.numel()
        assert int((layer.weight == 0).sum()) == round(target * n), name
    # The survivors are the largest weights of each layer.
    for name, layer in prunable_layers(g).items():
        kept = prunable_layers(pruned)[name].weight != 0
        if 0 < kept.sum() < kept.numel():
            assert layer.weight[kept].abs().min() >= layer.weight[~kept].abs().max()


@pytest.mark.parametrize("target", [0.25, 0.8])
def test_global_scope_reaches_the_sparsity_exactly_over_all_layers(target):
    g = tiny_generator("dcgan")
    pruned = prune(g, MagnitudePruneConfig(target, scope="global"))
    n = sum(m.weight.numel() for m in prunable_layers(g).values())
    zeros = sum(int((m.weight == 0).sum()) for m in prunable_layers(pruned).values())
    assert zeros == round(target * n)
    per_layer = sparsity_report(pruned)["sparsity"]
    assert per_layer.max() - per_layer.min() > 0.01  # one threshold for all: layers end up unequal
    # One threshold for all layers: every pruned weight was no larger than every survivor, anywhere.
    with torch.no_grad():
        original = {k: m.weight.abs() for k, m in prunable_layers(g).items()}
        keep = masks(pruned)
        largest_pruned = max(float(original[k][~keep[k]].max()) for k in keep if (~keep[k]).any())
        smallest_kept = min(float(original[k][keep[k]].min()) for k in keep)
    assert largest_pruned <= smallest_kept


def test_global_ties_are_broken_deterministically():
    lin = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        lin[0].weight.fill_(1.0)
        lin[1].weight.fill_(1.0)
    pruned = prune(lin, MagnitudePruneConfig(0.5, scope="global"))
    # 24 equal weights, 12 pruned: the earliest in (layer, flat position) order go first.
    assert not masks(pruned)["0"].flatten()[:12].any() and masks(pruned)["0"].flatten()[12:].all()
    assert masks(pruned)["1"].all()


def test_only_the_named_layers_are_pruned_and_masks_only_grow():
    g = tiny_generator("dcgan")
    pruned = prune(g, MagnitudePruneConfig(0.6, layers=("net.3",)))
    assert zero_fraction(pruned.net[3]) == pytest.approx(0.6, abs=1e-3)
    assert zero_fraction(pruned.net[0]) == 0.0
    again = prune(pruned, MagnitudePruneConfig(0.8, layers=("net.3",)))
    assert (masks(again)["net.3"] <= masks(pruned)["net.3"]).all()  # every earlier zero stays a zero
    assert zero_fraction(again.net[3]) == pytest.approx(0.8, abs=1e-3)
    with pytest.raises(GanSurveyError, match="masks only grow"):
        prune(again, MagnitudePruneConfig(0.5, layers=("net.3",)))


def test_masked_model_counts_dense_params_and_discriminators_prune_too():
    g = tiny_generator("dcgan")
    pruned = prune(g, MagnitudePruneConfig(0.7))
    assert count_params(pruned) == count_params(g)  # masks are bookkeeping; the dense weights are still held
    d = models.DCGANDiscriminator(base=8)
    pd_ = prune(d, MagnitudePruneConfig(0.5, scope="global"))
    assert sparsity(pd_) == pytest.approx(0.5, abs=1e-4)
    x = torch.randn(2, 1, 32, 32)
    assert pd_(x).shape == d(x).shape


def test_masks_survive_training_with_the_shared_trainer():
    torch.manual_seed(0)
    g = models.MLPGenerator(hidden=16, depth=2)
    d = models.MLPDiscriminator(hidden=16, depth=2)
    pruned = prune(g, MagnitudePruneConfig(0.5, scope="global"))
    keep, before = masks(pruned), snapshot(pruned)
    task = UnconditionalTask(torch.randn(64, 2))
    train_gan(pruned, d, task, TrainConfig(steps=3, batch_size=16, progress=False, ema_decay=0.5))
    after = masks(pruned)
    assert all(torch.equal(keep[k], after[k]) for k in keep)
    for name, layer in prunable_layers(pruned).items():
        assert (layer.weight[~keep[name]] == 0).all()
    changed = [k for k in before if not torch.equal(before[k], pruned.state_dict()[k])]
    assert any(k.endswith("original") for k in changed)  # it did train
    assert sparsity(pruned) == pytest.approx(0.5, abs=1e-3)


def test_bake_masks_gives_plain_layers_with_the_same_outputs():
    g = tiny_generator("dcgan")
    pruned = prune(g, MagnitudePruneConfig(0.5))
    baked = bake_masks(pruned)
    assert type(baked.net[0]) is nn.ConvTranspose2d and masks(baked) == {}
    assert torch.equal(baked(inputs(g)), pruned(inputs(g)))
    assert sparsity(baked) == pytest.approx(0.5, abs=1e-3)
    assert masks(pruned)  # the source keeps its masks and its weight property
    assert pruned(inputs(g)).shape == g(inputs(g)).shape


# ---------------------------------------------------------------- sparse storage


@pytest.mark.parametrize("kind", list(TINY))
def test_sparse_storage_matches_the_masked_model_and_shrinks(kind):
    g = tiny_generator(kind)
    x = inputs(g)
    sizes = []
    for target in (0.5, 0.8, 0.95):
        pruned = prune(g, MagnitudePruneConfig(target))
        before = snapshot(pruned)
        sparse = to_sparse_storage(pruned)
        assert_unchanged(pruned, before)
        assert torch.allclose(sparse(x), pruned(x), atol=1e-6)
        assert masks(sparse).keys() == masks(pruned).keys()
        assert all(torch.equal(masks(sparse)[k], masks(pruned)[k]) for k in masks(pruned))
        assert sparsity(sparse) == pytest.approx(sparsity(pruned))
        weights = sum(m.weight.numel() for m in prunable_layers(g).values())
        survivors = sum(int((m.weight != 0).sum()) for m in prunable_layers(pruned).values())
        assert count_params(sparse) == count_params(g) - weights + survivors  # the index is not a weight
        sizes.append(stored_bytes(sparse))
    assert stored_bytes(g) > sizes[0] > sizes[1] > sizes[2]
    if kind == "dcgan":  # the family whose weights dwarf torch.save's per-tensor overhead at this size
        assert sizes[0] < 0.6 * stored_bytes(g) and sizes[2] < 0.2 * stored_bytes(g)


def test_sparse_state_dict_round_trips_through_torch_save():
    g = tiny_generator("dcgan")
    sparse = to_sparse_storage(prune(g, MagnitudePruneConfig(0.9)))
    buffer = io.BytesIO()
    torch.save(sparse.state_dict(), buffer)
    state = torch.load(io.BytesIO(buffer.getvalue()))
    # A container of the same architecture pruned differently adopts the stored sizes and index formats.
    other = to_sparse_storage(prune(tiny_generator("dcgan", seed=5), MagnitudePruneConfig(0.3)))
    other.load_state_dict(state)
    x = inputs(g)
    assert torch.equal(other(x), sparse(x))
    assert all(a.dtype == b.dtype and torch.equal(a, b)
               for a, b in zip(other.state_dict().values(), sparse.state_dict().values(), strict=True))


def test_a_corrupted_sparse_checkpoint_is_refused():
    sparse = to_sparse_storage(prune(tiny_generator("mlp"), MagnitudePruneConfig(0.5)))
    state = sparse.state_dict()
    state["net.0.values"] = state["net.0.values"][:-3]
    with pytest.raises(GanSurveyError, match="corrupted sparse weight 'net.0.'"):
        copy.deepcopy(sparse).load_state_dict(state)


def test_the_smallest_index_format_is_chosen_and_decodes():
    n = 70_000
    cases = {
        "bitmap": torch.rand(n, generator=torch.Generator().manual_seed(0)) < 0.5,
        "int16-gaps": torch.arange(n) % 100 == 7,
        "int32-indices": torch.isin(torch.arange(n), torch.tensor([3, 50_000])),
    }
    dtypes = {"bitmap": torch.uint8, "int16-gaps": torch.int16, "int32-indices": torch.int32}
    for fmt, keep in cases.items():
        index = encode_index(keep)
        assert index.dtype == dtypes[fmt], fmt
        assert torch.equal(decode_positions(index, n), keep.nonzero().squeeze(1))
    assert encode_index(cases["bitmap"]).numel() == n // 8


def test_sparse_values_can_be_fine_tuned_and_stay_sparse():
    torch.manual_seed(0)
    sparse = to_sparse_storage(prune(models.MLPGenerator(hidden=16, depth=2), MagnitudePruneConfig(0.75)))
    before = snapshot(sparse)
    train_gan(sparse, models.MLPDiscriminator(hidden=16, depth=2), UnconditionalTask(torch.randn(64, 2)),
              TrainConfig(steps=3, batch_size=16, progress=False))
    assert not torch.equal(before["net.0.values"], sparse.state_dict()["net.0.values"])
    assert sparsity(sparse) == pytest.approx(0.75, abs=1e-3)


def test_sparse_storage_needs_something_to_store():
    with pytest.raises(GanSurveyError, match="no masked layers"):
        to_sparse_storage(tiny_generator("mlp"))
    sparse = to_sparse_storage(tiny_generator("mlp"), layers=("net.0",))
    assert sparse.net[0].index_format == "bitmap" and sparsity(sparse, ("net.0",)) == 0.0
    with pytest.raises(GanSurveyError, match="prune the masked model before"):
        prune(to_sparse_storage(prune(tiny_generator("mlp"), MagnitudePruneConfig(0.5))), MagnitudePruneConfig(0.7))


# ---------------------------------------------------------------- structured channel pruning


@pytest.mark.parametrize("kind", list(TINY))
@pytest.mark.parametrize("criterion", ["l1", "l2", "bn_scale"])
def test_channel_pruning_makes_every_family_smaller_with_the_same_shapes(kind, criterion):
    g = tiny_generator(kind)
    x = inputs(g)
    before = snapshot(g)
    if kind == "mlp" and criterion == "bn_scale":
        with pytest.raises(GanSurveyError, match="'bn_scale' needs BatchNorm"):
            prune(g, ChannelPruneConfig(0.5, criterion=criterion))
        return
    pruned = prune(g, ChannelPruneConfig(0.5, criterion=criterion))
    assert_unchanged(g, before)
    assert pruned(x).shape == g(x).shape
    assert count_params(pruned) < 0.4 * count_params(g)
    assert count_macs(pruned, x[:1]) < 0.4 * count_macs(g, x[:1])
    assert stored_bytes(pruned) < 0.6 * stored_bytes(g)  # fixed per-tensor overhead of torch.save remains
    # Half the channels is exactly the half-width member of the family: hparams rebuild the pruned model.
    assert pruned.hparams["width"] == 0.5
    rebuilt = type(g)(**pruned.hparams).eval()
    rebuilt.load_state_dict(pruned.state_dict())
    assert torch.equal(rebuilt(x), pruned(x))


def test_conv_transpose_chain_is_pruned_consistently():
    g = tiny_generator("dcgan")  # channels 32, 16, 8 then the 1-channel output layer
    pruned = prune(g, ChannelPruneConfig(0.5))
    convs = [m for m in pruned.net if isinstance(m, nn.ConvTranspose2d)]
    bns = [m for m in pruned.net if isinstance(m, nn.BatchNorm2d)]
    assert [c.out_channels for c in convs] == [16, 8, 4, 1]
    assert [c.in_channels for c in convs] == [16, 16, 8, 4]
    assert [tuple(c.weight.shape[:2]) for c in convs] == [(16, 16), (16, 8), (8, 4), (4, 1)]
    assert [b.num_features for b in bns] == [16, 8, 4] and [b.running_mean.numel() for b in bns] == [16, 8, 4]


def test_residual_channels_are_pruned_together_or_not_at_all():
    g = tiny_generator("resnet")  # c1, c2, c3 = 4, 8, 16
    pruned = prune(g, ChannelPruneConfig(0.5))
    tied = [pruned.down[7].out_channels, pruned.up[0].in_channels]
    tied += [b.body[5].out_channels for b in pruned.blocks] + [b.body[1].in_channels for b in pruned.blocks]
    assert set(tied) == {8}
    assert pruned.up[-2].out_channels == 1  # the output layer keeps its channels
    kept = prune(g, ChannelPruneConfig(0.5, ignore=("blocks.1.body.5",)))
    tied = [kept.down[7].out_channels, kept.up[0].in_channels] + [b.body[5].out_channels for b in kept.blocks]
    assert set(tied) == {16}  # ignoring one member keeps the whole skip-connected group
    assert kept.down[1].out_channels == 2 and kept.blocks[0].body[1].out_channels == 8
    assert kept.hparams == g.hparams
    x = inputs(g)
    assert kept(x).shape == g(x).shape


def test_the_criterion_picks_the_channels_it_documents():
    lin = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    norms = torch.tensor([5.0, 1.0, 4.0, 0.5, 3.0, 2.0])
    with torch.no_grad():
        lin[0].weight.copy_(norms[:, None] / 3 * torch.ones(6, 3))
    pruned = prune(lin, ChannelPruneConfig(0.5), example_input=torch.zeros(2, 3))
    assert torch.allclose(pruned[0].weight[:, 0], norms[[0, 2, 4]] / 3)  # kept: the 3 largest, in order
    assert torch.equal(pruned[2].weight, lin[2].weight[:, [0, 2, 4]])

    g = tiny_generator("dcgan")
    gamma = torch.arange(32, dtype=torch.float32).flip(0)  # channel 0 has the largest |gamma|
    with torch.no_grad():
        g.net[1].weight.copy_(gamma)
    pruned = prune(g, ChannelPruneConfig(0.25, criterion="bn_scale"))
    assert torch.equal(pruned.net[1].weight, gamma[:24])


def test_importance_objects_cite_their_paper_and_configs_store_their_name():
    assert set(IMPORTANCES) == {"l1", "l2", "bn_scale"}
    assert all(isinstance(i, Importance) and i.citation and i.name == key for key, i in IMPORTANCES.items())
    assert "Pruning Filters for Efficient ConvNets" in MagnitudeImportance(p=1).citation
    assert "Network Slimming" in BNScaleImportance().citation
    config = ChannelPruneConfig(0.5, criterion=MagnitudeImportance(p=2))
    assert config.criterion == "l2" and config.importance is IMPORTANCES["l2"]
    assert ChannelPruneConfig.from_dict(config.to_dict()) == config
    g = tiny_generator("dcgan")
    by_name, by_object = prune(g, ChannelPruneConfig(0.5, criterion="l2")), prune(g, config)
    assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(), by_object.state_dict().values(),
                                                    strict=True))
    with pytest.raises(GanSurveyError, match="p = 1 or 2"):
        MagnitudeImportance(p=3)


def test_round_to_and_discriminators():
    assert [kept_channels(c, ChannelPruneConfig(0.3, round_to=4)) for c in (32, 16, 8, 3)] == [24, 12, 8, 3]
    g = tiny_generator("dcgan")
    pruned = prune(g, ChannelPruneConfig(0.3, round_to=4))
    assert [m.out_channels for m in pruned.net if isinstance(m, nn.ConvTranspose2d)] == [24, 12, 8, 1]
    d = models.PatchDiscriminator(in_channels=2, ndf=8)
    pd_ = prune(d, ChannelPruneConfig(0.5))
    x = torch.randn(2, 2, 32, 32)
    assert pd_(x).shape == d(x).shape and count_params(pd_) < count_params(d)
    assert pd_.training == d.training


def test_channel_pruning_refuses_masked_models():
    with pytest.raises(GanSurveyError, match="cannot follow MagnitudePruneConfig: channel pruning needs plain"):
        prune(prune(tiny_generator("dcgan"), MagnitudePruneConfig(0.5)), ChannelPruneConfig(0.5))
    masked = prune(tiny_generator("dcgan"), MagnitudePruneConfig(0.5))
    masked.compression = []  # a masked model whose history was lost is still refused, by the layers themselves
    with pytest.raises(GanSurveyError, match="bake_masks first"):
        prune(masked, ChannelPruneConfig(0.5))
    both = prune(bake_masks(prune(tiny_generator("dcgan"), MagnitudePruneConfig(0.5))), ChannelPruneConfig(0.5))
    assert count_params(both) < count_params(tiny_generator("dcgan"))
    assert [e["type"] for e in both.compression] == ["MagnitudePruneConfig", "ChannelPruneConfig"]


# ---------------------------------------------------------------- lottery tickets


def toy_trainer():
    real = torch.randn(128, 2, generator=torch.Generator().manual_seed(3)) * 0.2 + 1.0
    calls = []

    def train(model):
        calls.append(sparsity(model))
        torch.manual_seed(len(calls))
        train_gan(model, models.MLPDiscriminator(hidden=16, depth=2), UnconditionalTask(real),
                  TrainConfig(steps=3, batch_size=16, lr_g=1e-2, progress=False))
        return model

    return train, calls


def test_lottery_ticket_reaches_the_target_and_rewinds():
    torch.manual_seed(0)
    g = models.MLPGenerator(hidden=16, depth=2)
    before = snapshot(g)
    train, calls = toy_trainer()
    result = lottery_ticket(g, train, rounds=3, final_sparsity=0.875)
    assert_unchanged(g, before)
    assert len(calls) == 4 and calls[0] == 0.0
    n = sum(m.weight.numel() for m in prunable_layers(g).values())
    assert sparsity(result.ticket) == round(0.875 * n) / n
    assert [round(r["target_sparsity"], 3) for r in result.history] == [0.5, 0.75, 0.875]
    assert [r["sparsity"] for r in result.history] == sorted(r["sparsity"] for r in result.history)
    assert calls[1:] == pytest.approx([0.5, 0.75, 0.875], abs=1e-2)
    # The ticket's start: the original initial weights where the mask keeps them, zero elsewhere.
    for name, layer in prunable_layers(result.initial).items():
        assert torch.equal(layer.weight, g.get_submodule(name).weight * result.mask[name])
    trained, start = result.ticket.state_dict(), result.initial.state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # and the last round trained it


def test_lottery_ticket_rewinds_to_a_given_state_in_layer_scope():
    torch.manual_seed(0)
    g = models.MLPGenerator(hidden=16, depth=2)
    early = models.MLPGenerator(hidden=16, depth=2).state_dict()
    train, _ = toy_trainer()
    result = lottery_ticket(g, train, rounds=1, final_sparsity=0.5, rewind_state=early, scope="layer")
    for name, layer in prunable_layers(result.initial).items():
        assert torch.equal(layer.weight, early[f"{name}.weight"] * result.mask[name])
        assert zero_fraction(layer) == pytest.approx(0.5, abs=0.01)
    lacks = r"rewind_state lacks 'net\.0\.(bias|weight)'; it must be a state_dict of the same architecture"
    with pytest.raises(GanSurveyError, match=lacks):
        lottery_ticket(g, train, rounds=1, final_sparsity=0.5, rewind_state={}, train_first=False)


def test_random_reinit_keeps_the_mask_and_draws_new_weights():
    torch.manual_seed(0)
    g = models.MLPGenerator(hidden=16, depth=2)
    ticket = prune(g, MagnitudePruneConfig(0.6, scope="global"))
    before = snapshot(ticket)
    state = torch.random.get_rng_state()
    control = random_reinit(ticket, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())  # the global random stream is not disturbed
    assert_unchanged(ticket, before)
    keep = masks(ticket)
    assert all(torch.equal(keep[k], masks(control)[k]) for k in keep)
    for name, layer in prunable_layers(control).items():
        survivors = layer.weight[keep[name]]
        assert (survivors != 0).all() and (layer.weight[~keep[name]] == 0).all()
        assert not torch.allclose(survivors, prunable_layers(ticket)[name].weight[keep[name]])
    assert torch.equal(random_reinit(ticket, seed=1).net[0].weight, control.net[0].weight)
    assert not torch.equal(random_reinit(ticket, seed=2).net[0].weight, control.net[0].weight)
    moved = apply_masks(models.MLPGenerator(hidden=16, depth=2), keep)
    assert all(torch.equal(keep[k], masks(moved)[k]) for k in keep)


def test_lottery_ticket_refuses_a_trainer_that_drops_the_masks():
    g = models.MLPGenerator(hidden=16, depth=2)
    with pytest.raises(GanSurveyError, match="masks differ"):
        lottery_ticket(g, bake_masks, rounds=1, final_sparsity=0.5)
    with pytest.raises(GanSurveyError, match=r"take \.model"):
        lottery_ticket(g, lambda m: (m, []), rounds=1, final_sparsity=0.5)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("make", "needle"), [
    (lambda: MagnitudePruneConfig(1.0), r"sparsity must be a number >= 0 and < 1, got 1.0"),
    (lambda: MagnitudePruneConfig(-0.1), r"sparsity must be a number >= 0 and < 1, got -0.1"),
    (lambda: MagnitudePruneConfig(0.5, scope="row"), r"unknown pruning scope 'row'; allowed: 'layer', "
                                                      r"'global'"),
    (lambda: MagnitudePruneConfig(0.5, layers="net.0"), r"layers must be a tuple of module names"),
    (lambda: ChannelPruneConfig(1.0), r"channel pruning ratio must be a number >= 0 and < 1, got 1.0"),
    (lambda: ChannelPruneConfig(-0.5), r"ratio must be a number >= 0 and < 1, got -0.5"),
    (lambda: ChannelPruneConfig(0.5, criterion="l3"), r"unknown channel importance criterion 'l3'; allowed: "
                                                       r"'l1', 'l2', 'bn_scale'"),
    (lambda: ChannelPruneConfig(0.5, round_to=0), r"round_to must be an integer >= 1, got 0"),
])
def test_bad_configs_name_the_value_and_what_is_allowed(make, needle):
    with pytest.raises(GanSurveyError, match=needle):
        make()


def test_bad_arguments_to_prune():
    g = tiny_generator("dcgan")
    with pytest.raises(GanSurveyError, match=r"layer 'net.99' is not a prunable .*allowed: 'net.0', 'net.3'"):
        prune(g, MagnitudePruneConfig(0.5, layers=("net.99",)))
    with pytest.raises(GanSurveyError, match=r"layer 'net.1' is not a prunable layer"):
        prune(g, MagnitudePruneConfig(0.5, layers=("net.1",)))  # a BatchNorm
    with pytest.raises(GanSurveyError, match=r"ignore names 'nope'"):
        prune(g, ChannelPruneConfig(0.5, ignore=("nope",)))
    with pytest.raises(GanSurveyError, match=r"got \{'sparsity': 0.5\} \(dict\); allowed: MagnitudeP"):
        prune(g, {"sparsity": 0.5})
    with pytest.raises(GanSurveyError, match="prune needs a torch module, got str"):
        prune("dcgan", MagnitudePruneConfig(0.5))
    with pytest.raises(GanSurveyError, match="final_sparsity must be a number >= 0 and < 1, got 1"):
        lottery_ticket(g, lambda m: m, rounds=2, final_sparsity=1)
    with pytest.raises(GanSurveyError, match="rounds must be an integer >= 1, got 0"):
        lottery_ticket(g, lambda m: m, rounds=0, final_sparsity=0.5)
    with pytest.raises(GanSurveyError, match="has no pruning masks"):
        random_reinit(g)


# ---------------------------------------------------------------- 2:4 semi-structured, decode-once storage


def test_two_of_four_pattern_on_every_layer_type():
    from gansurvey.compress.sparse import semi_structured_layers, to_semi_structured

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 3), nn.Conv2d(3, 4, 3), nn.ConvTranspose2d(4, 2, 3))
    pruned = prune(model, MagnitudePruneConfig(0.5, pattern="2:4"))
    rows = {  # each layer's weight viewed along its reduction dimension
        "0": pruned[0].weight.detach(),
        "1": pruned[1].weight.detach().reshape(4, -1),
        "2": pruned[2].weight.detach().permute(1, 2, 3, 0).reshape(-1, 4),
    }
    for name, w in rows.items():
        full = w.shape[1] // 4 * 4
        per_group = (w[:, :full] != 0).view(w.shape[0], -1, 4).sum(-1)
        assert int(per_group.max()) <= 2 and int(per_group.min()) == 2, name
        assert full == w.shape[1] or int((w[:, full:] != 0).sum(-1).max()) <= 2, name
    # the kept pair is the larger pair of each group
    w, orig = pruned[1].weight.detach().reshape(4, -1)[:, :24], model[1].weight.detach().reshape(4, -1)[:, :24]
    kept, dropped = orig.abs().masked_fill(w == 0, float("inf")), orig.abs().masked_fill(w != 0, -1.0)
    assert bool((kept.view(4, -1, 4).min(-1).values >= dropped.view(4, -1, 4).max(-1).values).all())
    x = torch.randn(2, 8)
    lin = prune(nn.Linear(8, 4), MagnitudePruneConfig(0.5, pattern="2:4"))
    assert list(semi_structured_layers(lin)) == [""]
    assert torch.allclose(to_semi_structured(lin)(x), lin(x))  # on a CPU: the dense reference path


def test_two_of_four_refuses_other_sparsities():
    with pytest.raises(GanSurveyError, match=r"pattern '2:4' .* sparsity=0.5 and scope='layer', got sparsity=0.7"):
        MagnitudePruneConfig(0.7, pattern="2:4")
    with pytest.raises(GanSurveyError, match=r"unknown sparsity pattern '3:4'; allowed: 'unstructured', '2:4'"):
        MagnitudePruneConfig(0.5, pattern="3:4")


def test_sparse_storage_decodes_once_for_inference():
    torch.manual_seed(0)
    sparse = to_sparse_storage(prune(nn.Linear(32, 16), MagnitudePruneConfig(0.8)))
    x = torch.randn(4, 32)
    with torch.no_grad():
        first = sparse.weight
        assert sparse.weight is first  # cached, not rebuilt
        out = sparse(x)
        sparse.values.mul_(2)  # a change to the stored values invalidates the cache
        assert torch.allclose(sparse(x) - sparse.bias, 2 * (out - sparse.bias), atol=1e-5)
    assert "_dense_cache" not in sparse.state_dict()
    assert sparse.weight.requires_grad  # training still rebuilds differentiably


def test_the_default_scope_is_global_except_for_the_2_4_pattern():
    assert MagnitudePruneConfig(0.9).scope == "global"
    assert MagnitudePruneConfig(0.5, pattern="2:4").scope == "layer"
    g = tiny_generator("dcgan")
    pruned = prune(g, MagnitudePruneConfig(0.9))
    shares = [float((layer.weight == 0).float().mean()) for layer in prunable_layers(pruned).values()]
    total = sum(int((layer.weight == 0).sum()) for layer in prunable_layers(pruned).values())
    assert total == round(0.9 * sum(layer.weight.numel() for layer in prunable_layers(g).values()))
    assert max(shares) - min(shares) > 0.05  # one threshold: the layers end at different shares


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 64, batch_first=True)
        self.head = nn.Linear(64, 8)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def test_magnitude_pruning_names_what_it_cannot_prune():  # #21: these were silent
    from gansurvey.compress.base import UncompressedWarning

    with pytest.raises(GanSurveyError, match="Sequential has no Linear, Conv2d or ConvTranspose2d layer, so it has "
                                             "no weights that magnitude pruning can mask"):
        prune(nn.Sequential(nn.ReLU()), MagnitudePruneConfig(0.5))
    with pytest.raises(GanSurveyError, match=r"layers=\(\) names no layer to prune; allowed: .*'0'"):
        prune(nn.Sequential(nn.Linear(4, 4)), MagnitudePruneConfig(0.5, layers=()))
    # the LSTM's weights stay dense: its sparsity of 0.5 is of the head alone, so the warning says so
    with pytest.warns(UncompressedWarning, match=r"MagnitudePruneConfig left 20480 of 21512 weights uncompressed.*"
                                                 r"'lstm' \(LSTM, 20480 weights\)"):
        prune(_Recurrent(), MagnitudePruneConfig(0.5))
