//! Writes the generated GEMM family (src/kernels/gemm/generator.rs) into
//! OUT_DIR, where src/gpu/pipelines.rs embeds it next to shaders/*.wgsl.

#[allow(dead_code)]
#[path = "src/kernels/gemm/generator.rs"]
mod generator;

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/kernels/gemm/generator.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (module, file) in [
        (generator::Module::Plain, "gemm_family.wgsl"),
        (generator::Module::Subgroup, "gemm_family_subgroup.wgsl"),
    ] {
        let text = generator::module_source(module);
        std::fs::write(out.join(file), text).expect("OUT_DIR is writable");
    }
}
