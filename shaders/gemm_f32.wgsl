// Storage type of the f32 GEMM modules (see shaders/gemm_common.wgsl).
alias Elem = f32;
