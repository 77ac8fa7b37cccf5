// Storage type of the f16 GEMM modules (SHADER_F16 only): f16 in memory,
// f32 arithmetic (see shaders/gemm_common.wgsl).
enable f16;
alias Elem = f16;
