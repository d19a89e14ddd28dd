"""Compile the kernels ahead of time for an H100/H200 (sm_90) without a GPU, and read their PTX.

The interpreter does not type-check what the compiler does (dtypes of tl.dot, int8 MMA), so this catches kernels
that would only fail on a GPU; the PTX also shows the performance design is there: tensor-core MMA in the GEMMs,
none in the GEMV (a 16-row MMA would waste 15/16 of it on one row), atomic split-K reduction, vector loads of the
K-major codes, int8 MMA with int32 accumulation for W8A8.
"""

import pytest

from gansurvey.kernels import triton_kernels

pytestmark = pytest.mark.skipif(not triton_kernels.HAS_TRITON, reason="triton is not installed")

INTS = dict.fromkeys(("M", "N", "K"), "i32")
#: The epilogue's arguments (a per-channel scale, the leaky slope) every GEMM and convolution kernel takes.
EPILOGUE_ARGS = {"a_ptr": "*fp32", "slope": "fp32"}
FLOAT_ARGS = {"p_ptr": "*u8", "s_ptr": "*fp32", "z_ptr": "*fp32", "b_ptr": "*fp32", **INTS, "KB": "i32", "G": "i32",
              "group_size": "i32"}


def _compile(fn, signature, constexprs, warps=4):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    # What a launch on aligned tensors with sizes divisible by 16 specializes (4096-wide layers): 16-byte aligned
    # pointers and divisible integers, which is what lets the compiler vectorise loads.
    names = list(signature)
    aligned = [i for i, n in enumerate(names) if signature[n].startswith("*") or n in ("N", "K", "KB", "group_size")]
    attrs = {(i,): [["tt.divisibility", 16]] for i in aligned}
    src = ASTSource(fn=fn.fn, signature={**signature, **dict.fromkeys(constexprs, "constexpr")}, constexprs=constexprs,
                    attrs=attrs)
    try:
        with triton_kernels.compiler_scope():
            return triton.compile(src, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": warps, "num_stages": 3})
    except (FileNotFoundError, RuntimeError) as err:  # no ptxas / CUDA backend in this installation
        if "ptxas" in str(err) or "backend" in str(err).lower():
            pytest.skip(f"cannot compile for sm_90 here: {err}")
        raise


@pytest.mark.parametrize("bits", [4, 3])
@pytest.mark.parametrize("out", ["bf16", "fp16"])
def test_weight_only_gemm_uses_tensor_cores_and_writes_x_dtype(bits, out):
    kernels = triton_kernels._kernels(False)
    sig = {"x_ptr": f"*{out}", **FLOAT_ARGS, **EPILOGUE_ARGS, "out_ptr": f"*{out}"}
    compiled = _compile(kernels.weight_only, sig, {
        "BITS": bits, "KMAJOR": bits in triton_kernels.ALIGNED_BITS, "HAS_ZEROS": True, "HAS_BIAS": True,
        "HAS_SCALE": True, "ACT": 3, "UPCAST": False, "PRECISION": "tf32", "BLOCK_M": 16, "BLOCK_N": 64,
        "BLOCK_K": 128})
    ptx = compiled.asm["ptx"]
    assert "mma" in ptx
    assert "st.global.b16" in ptx or "st.global.v" in ptx  # the epilogue stores 16-bit values (cast fused)
    if bits == 4:  # K-major bytes: vectorised, coalesced loads of the codes
        assert "ld.global.v" in ptx


def test_gemv_has_no_mma_and_reduces_split_k_atomically():
    kernels = triton_kernels._kernels(False)
    sig = {"x_ptr": "*fp16", **FLOAT_ARGS, "out_ptr": "*fp32"}
    compiled = _compile(kernels.gemv, sig, {
        "BITS": 4, "KMAJOR": True, "HAS_ZEROS": False, "HAS_BIAS": True, "BLOCK_M": 1, "BLOCK_N": 64,
        "BLOCK_K": 128, "SPLIT_K": 4})
    ptx = compiled.asm["ptx"]
    assert "mma" not in ptx
    assert "red.global" in ptx or "atom.global" in ptx


def test_w8a8_uses_int8_mma_with_int32_accumulation():
    kernels = triton_kernels._kernels(False)
    sig = {"x_ptr": "*i8", "xs_ptr": "*fp32", "p_ptr": "*u8", "s_ptr": "*fp32", "ws_ptr": "*i32", "b_ptr": "*fp32",
           "out_ptr": "*fp16", **INTS, "G": "i32", "group_size": "i32", "x_offset": "i32", **EPILOGUE_ARGS}
    compiled = _compile(kernels.w8a8, sig, {"HAS_OFFSET": True, "HAS_BIAS": True, "HAS_SCALE": False, "ACT": 1,
                                            "BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64})
    assert ".s32.s8.s8" in compiled.asm["ptx"]  # int8 (wg)MMA with int32 accumulation


@pytest.mark.parametrize(("bits", "per_row"), [(4, True), (4, False), (5, False), (8, True)])
def test_lut_compiles_with_a_staged_or_global_codebook(bits, per_row):
    kernels = triton_kernels._kernels(False)
    sig = {"x_ptr": "*fp16", "p_ptr": "*u8", "cb_ptr": "*fp32", "b_ptr": "*fp32", "out_ptr": "*fp16", **INTS,
           "KB": "i32", **EPILOGUE_ARGS}
    staged = 2**bits <= triton_kernels.STAGED_CODEBOOK
    compiled = _compile(kernels.lut, sig, {
        "BITS": bits, "KMAJOR": bits in triton_kernels.ALIGNED_BITS, "PER_ROW": per_row, "STAGED": staged,
        "HAS_BIAS": False, "HAS_SCALE": False, "ACT": 0, "UPCAST": False, "PRECISION": "tf32", "BLOCK_M": 16,
        "BLOCK_N": 64, "BLOCK_K": 64})
    assert "mma" in compiled.asm["ptx"]


CONV_GEOMETRY = ("H", "W", "HO", "WO")
STRIDES = ("sxb", "sxc", "sxh", "sxw", "sob", "soc", "soh", "sow")


@pytest.mark.parametrize(("kernel", "fmt"), [("conv2d", "weight-only"), ("conv2d", "lut"),
                                             ("conv_transpose2d", "weight-only"), ("conv_transpose2d", "lut")])
def test_implicit_convs_use_tensor_cores_and_write_x_dtype(kernel, fmt):
    from gansurvey.kernels import triton_conv

    kernels = triton_conv._kernels(False)
    taps = ("KW", "KHW") if kernel == "conv2d" else ("HQ", "WQ", "KH", "KW")
    geometry = dict.fromkeys((*CONV_GEOMETRY, *taps, "SH", "SW", "PH", "PW", "DH", "DW", *STRIDES), "i32")
    sig = {"x_ptr": "*fp16", **FLOAT_ARGS, **EPILOGUE_ARGS, "out_ptr": "*fp16", **geometry}
    lut = fmt == "lut"
    compiled = _compile(getattr(kernels, kernel), sig, {
        "FORMAT": int(lut), "BITS": 4, "KMAJOR": True, "HAS_ZEROS": not lut, "PER_ROW": lut, "STAGED": lut,
        "HAS_BIAS": True, "HAS_SCALE": True, "ACT": 2, "UPCAST": False, "PRECISION": "tf32", "BLOCK_M": 64,
        "BLOCK_N": 64, "BLOCK_K": 64})
    ptx = compiled.asm["ptx"]
    assert "mma" in ptx
    assert "st.global.b16" in ptx or "st.global.v" in ptx


@pytest.mark.parametrize("kernel", ["w8a8_conv2d", "w8a8_conv_transpose2d"])
def test_implicit_w8a8_convs_use_int8_mma(kernel):
    from gansurvey.kernels import triton_conv

    kernels = triton_conv._kernels(False)
    taps = ("KW", "KHW") if kernel == "w8a8_conv2d" else ("HQ", "WQ", "KH", "KW")
    geometry = dict.fromkeys((*CONV_GEOMETRY, *taps, "SH", "SW", "PH", "PW", "DH", "DW", *STRIDES), "i32")
    sig = {"x_ptr": "*i8", "p_ptr": "*u8", "s_ptr": "*fp32", "ws_ptr": "*i32", "b_ptr": "*fp32", "out_ptr": "*fp16",
           **INTS, "G": "i32", "group_size": "i32", "x_scale": "fp32", "x_offset": "i32", **EPILOGUE_ARGS, **geometry}
    compiled = _compile(getattr(kernels, kernel), sig, {"HAS_OFFSET": True, "HAS_BIAS": True, "HAS_SCALE": True,
                                                        "ACT": 1, "BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64})
    assert ".s32.s8.s8" in compiled.asm["ptx"]
