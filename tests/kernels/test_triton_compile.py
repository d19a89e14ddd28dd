"""Compile the kernels ahead of time for an H100 (sm_90) without a GPU: the interpreter does not type-check
what the compiler does (dtypes of tl.dot, int8 MMA), so this catches kernels that would only fail on a GPU."""

import pytest

from gansurvey.kernels import triton_kernels

pytestmark = pytest.mark.skipif(not triton_kernels.HAS_TRITON, reason="triton is not installed")


def _compile(fn, signature, constexprs):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    src = ASTSource(fn=fn.fn, signature={**signature, **dict.fromkeys(constexprs, "constexpr")}, constexprs=constexprs)
    try:
        return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 3})
    except (FileNotFoundError, RuntimeError) as err:  # no ptxas / CUDA backend in this installation
        if "ptxas" in str(err) or "backend" in str(err).lower():
            pytest.skip(f"cannot compile for sm_90 here: {err}")
        raise


def test_kernels_compile_for_sm90():
    kernels = triton_kernels._kernels(False)
    blocks = {"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128}
    ints = dict.fromkeys(("M", "N", "K"), "i32")
    weight_only = {"x_ptr": "*bf16", "p_ptr": "*u8", "s_ptr": "*fp32", "z_ptr": "*fp32", "out_ptr": "*fp32",
                   **ints, "KB": "i32", "G": "i32", "group_size": "i32"}
    compiled = _compile(kernels.weight_only, weight_only,
                        {"BITS": 4, "HAS_ZEROS": True, "UPCAST": False, "PRECISION": "tf32", **blocks})
    assert "mma" in compiled.asm["ptx"]
    w8a8 = {"x_ptr": "*i8", "xs_ptr": "*fp32", "p_ptr": "*u8", "s_ptr": "*fp32", "out_ptr": "*fp32",
            **ints, "G": "i32", "group_size": "i32"}
    compiled = _compile(kernels.w8a8, w8a8, {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64})
    assert ".s32.s8.s8" in compiled.asm["ptx"]  # int8 (wg)MMA with int32 accumulation
    lut = {"x_ptr": "*fp16", "p_ptr": "*u8", "cb_ptr": "*fp32", "out_ptr": "*fp32", **ints, "KB": "i32"}
    _compile(kernels.lut, lut, {"BITS": 4, "PER_ROW": True, "UPCAST": False, "PRECISION": "tf32", **blocks})
