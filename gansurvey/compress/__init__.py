"""Compression techniques, one module per family of the survey, over one contract (:mod:`.base`):
``compress(model, config_or_list)`` returns a new module; ``prune``, ``factorize``, ``quantize`` and ``encode``
are its family names. Every config is a frozen, versioned :class:`CompressConfig`.

Pruning: ``pruning`` (the ``prune`` verb, magnitude pruning, lottery ticket), ``channels`` (structured channel
pruning) and ``sparse`` (masks and the sparse storage format). Distillation: ``distillation`` (the ``distill``
verb, students, output/feature/adversarial/perceptual terms). Precision: ``precision`` (the ``quantize`` verb,
``QuantConfig``, quantization-aware training, mixed precision, integer engines) and ``quantized_layers`` (the
packed layers and the quantizer arithmetic). Encoding: ``encoding`` (the ``encode`` verb, k-means weight
sharing, codebook layers whose state is an entropy-coded bitstream) and ``entropy`` (Huffman, ANS and range
coders). Low-rank: ``lowrank`` (the ``factorize`` verb, ``LowRankConfig``: SVD, Tucker-2, CP and tensor-train
layers, with ranks given, as fractions, by energy or estimated by VBMF). Execution: ``fusion`` (a compressed
layer's batch norm and activation run inside its kernel's epilogue).
"""

from gansurvey.compress.base import (
    FAMILIES,
    CompressConfig,
    chain_family,
    chain_method,
    compress,
    compression_chain,
    config_from_dict,
    register,
    registered_configs,
)
from gansurvey.compress.channels import (
    IMPORTANCES,
    BNScaleImportance,
    ChannelPruneConfig,
    Importance,
    MagnitudeImportance,
    kept_channels,
    prune_channels,
)
from gansurvey.compress.distillation import (
    DistillConfig,
    StudentConfig,
    auto_feature_layers,
    distill,
    distillation_losses,
    feature_pairs,
    make_student,
    remove_feature_hooks,
)
from gansurvey.compress.encoding import (
    CodebookConv2d,
    CodebookConvTranspose2d,
    CodebookLinear,
    EncodeConfig,
    codebook_layers,
    decode,
    deserialize,
    encode,
    encoding_report,
    kmeans_codebook,
    serialize,
)
from gansurvey.compress.fusion import FusedEpilogue, fuse_epilogues
from gansurvey.compress.lowrank import (
    LOWRANK_METHODS,
    FactorizedLayer,
    LowRankConfig,
    TTLinear,
    factorizable_layers,
    factorization_plan,
    factorize,
    factorized_layers,
    lowrank_report,
)
from gansurvey.compress.precision import (
    QuantConfig,
    allocate_bits,
    convert_qat,
    layer_sensitivity,
    output_sqnr,
    prepare_qat,
    quantize,
    quantized_bytes,
    sqnr_db,
    to_fused_engine,
    to_int4_cpu_engine,
    to_integer_engine,
)
from gansurvey.compress.pruning import (
    LotteryResult,
    MagnitudePruneConfig,
    PruneConfig,
    lottery_ticket,
    magnitude_prune,
    prune,
    random_reinit,
    rewind,
)
from gansurvey.compress.quantized_layers import (
    FakeQuantLayer,
    QuantizedConv2d,
    QuantizedConvTranspose2d,
    QuantizedLayer,
    QuantizedLinear,
)
from gansurvey.compress.sparse import (
    SparseConv2d,
    SparseConvTranspose2d,
    SparseLinear,
    WeightMask,
    apply_masks,
    bake_masks,
    masks,
    prunable_layers,
    semi_structured_layers,
    sparsity,
    sparsity_report,
    to_semi_structured,
    to_sparse_storage,
)

__all__ = [
    "FAMILIES", "CompressConfig", "StudentConfig", "chain_method", "compress", "compression_chain",
    "config_from_dict", "chain_family", "register", "registered_configs",
    "BNScaleImportance", "IMPORTANCES", "Importance", "MagnitudeImportance",
    "ChannelPruneConfig", "DistillConfig", "LotteryResult", "MagnitudePruneConfig", "PruneConfig", "SparseConv2d",
    "SparseConvTranspose2d", "SparseLinear", "WeightMask", "apply_masks", "auto_feature_layers", "bake_masks",
    "distill", "distillation_losses", "feature_pairs", "kept_channels", "lottery_ticket", "magnitude_prune",
    "make_student", "masks", "prunable_layers", "prune", "prune_channels", "random_reinit",
    "remove_feature_hooks", "rewind", "sparsity", "sparsity_report",
    "semi_structured_layers", "to_semi_structured", "to_sparse_storage",
    "FakeQuantLayer", "QuantConfig", "QuantizedConv2d", "QuantizedConvTranspose2d", "QuantizedLayer",
    "QuantizedLinear", "allocate_bits", "convert_qat", "layer_sensitivity", "output_sqnr", "prepare_qat",
    "quantize", "quantized_bytes", "sqnr_db", "to_fused_engine", "to_int4_cpu_engine", "to_integer_engine",
    "CodebookConv2d", "CodebookConvTranspose2d", "CodebookLinear", "EncodeConfig", "codebook_layers", "decode",
    "deserialize", "encode", "encoding_report", "kmeans_codebook", "serialize",
    "FusedEpilogue", "fuse_epilogues",
    "LOWRANK_METHODS", "FactorizedLayer", "LowRankConfig", "TTLinear", "factorizable_layers",
    "factorization_plan", "factorize", "factorized_layers", "lowrank_report",
]
