//! Cross-API shader validation: every shader in `shaders/` parses and
//! validates with naga, and every (entry point, override constants) the
//! launchers can build translates to SPIR-V, MSL, HLSL and GLSL. A shader
//! that fails any backend fails the suite, whatever adapters this machine
//! has.

use std::collections::BTreeSet;

use manytask::gpu::{KernelSpec, Shader};
use manytask::kernels::all_specs;
use naga::back::PipelineConstants;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::ShaderStage;

fn parse(shader: Shader) -> naga::Module {
    let src = shader.source();
    naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {}", shader.name(), e.emit_to_string(&src)))
}

/// Where GLSL is checked: everywhere but f16 kernels.
#[derive(Clone, Copy, PartialEq)]
enum Glsl {
    UnlessF16,
    Always,
}

/// What each family's kernels may use. Subgroup and f16 variants are only
/// launched when the adapter grants them.
fn capabilities() -> Capabilities {
    Capabilities::default()
        | Capabilities::SUBGROUP
        | Capabilities::SUBGROUP_BARRIER
        | Capabilities::SHADER_FLOAT16
}

fn validate(shader: Shader, module: &naga::Module) -> naga::valid::ModuleInfo {
    let src = shader.source();
    Validator::new(ValidationFlags::all(), capabilities())
        .validate(module)
        .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {}", shader.name(), e.emit_to_string(&src)))
}

fn uses_f16(module: &naga::Module) -> bool {
    module
        .types
        .iter()
        .any(|(_, t)| matches!(t.inner, naga::TypeInner::Scalar(s) | naga::TypeInner::Vector { scalar: s, .. } if s.kind == naga::ScalarKind::Float && s.width == 2))
}

/// Each module parsed and validated once per thread (the GEMM modules
/// hold the whole generated family: one entry point per configuration).
fn cross_compile(spec: &KernelSpec) -> Vec<String> {
    thread_local! {
        static MODULES: std::cell::RefCell<std::collections::HashMap<Shader, std::rc::Rc<(naga::Module, naga::valid::ModuleInfo)>>> =
            Default::default();
    }
    let parsed = MODULES.with(|m| {
        m.borrow_mut()
            .entry(spec.shader)
            .or_insert_with(|| {
                let module = parse(spec.shader);
                let info = validate(spec.shader, &module);
                std::rc::Rc::new((module, info))
            })
            .clone()
    });
    let (module, info) = &*parsed;
    translate(
        &spec.label(),
        module,
        info,
        spec.entry,
        spec.constants(),
        Glsl::UnlessF16,
    )
}

/// Translates one entry point with its override constants to every
/// backend; returns the failures, each naming the pipeline and backend.
fn translate(
    label: &str,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
    overrides: &[(&str, u32)],
    glsl: Glsl,
) -> Vec<String> {
    let constants: PipelineConstants = overrides
        .iter()
        .map(|&(k, v)| (k.to_string(), v as f64))
        .collect();
    let (module, info) = match naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((ShaderStage::Compute, entry)),
        &constants,
    ) {
        Ok(processed) => processed,
        Err(e) => return vec![format!("{label}: overrides: {e}")],
    };
    let (module, info) = (&*module, &*info);
    let mut failures = Vec::new();
    let mut fail = |backend: &str, e: String| failures.push(format!("{label} -> {backend}: {e}"));

    let spv_options = naga::back::spv::Options {
        lang_version: (1, 3),
        flags: naga::back::spv::WriterFlags::empty(),
        ..Default::default()
    };
    let spv_pipeline = naga::back::spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    if let Err(e) = naga::back::spv::write_vec(module, info, &spv_options, Some(&spv_pipeline)) {
        fail("SPIR-V", format!("{e:?}"));
    }

    let msl_options = naga::back::msl::Options {
        lang_version: (2, 4),
        fake_missing_bindings: true,
        ..Default::default()
    };
    let msl_pipeline = naga::back::msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    if let Err(e) = naga::back::msl::write_string(module, info, &msl_options, &msl_pipeline) {
        fail("MSL", format!("{e:?}"));
    }

    let hlsl_options = naga::back::hlsl::Options {
        shader_model: naga::back::hlsl::ShaderModel::V6_2,
        fake_missing_bindings: true,
        ..Default::default()
    };
    let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
    };
    let mut hlsl = String::new();
    if let Err(e) = naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &hlsl_pipeline)
        .write(module, info, None)
    {
        fail("HLSL", format!("{e:?}"));
    }

    // GLSL has no 16-bit floats: f16 kernels never run on GL (the adapter
    // does not grant SHADER_F16), so they are not translated for it.
    if glsl == Glsl::Always || !uses_f16(module) {
        let mut binding_map = naga::back::glsl::BindingMap::default();
        for (_, var) in module.global_variables.iter() {
            if let Some(rb) = var.binding {
                binding_map.insert(rb, (rb.group * 16 + rb.binding) as u8);
            }
        }
        let glsl_options = naga::back::glsl::Options {
            version: naga::back::glsl::Version::Desktop(430),
            writer_flags: naga::back::glsl::WriterFlags::empty(),
            binding_map,
            zero_initialize_workgroup_memory: true,
        };
        let glsl_pipeline = naga::back::glsl::PipelineOptions {
            shader_stage: ShaderStage::Compute,
            entry_point: entry.to_string(),
            multiview: None,
        };
        let mut glsl = String::new();
        let result = naga::back::glsl::Writer::new(
            &mut glsl,
            module,
            info,
            &glsl_options,
            &glsl_pipeline,
            naga::proc::BoundsCheckPolicies::default(),
        )
        .and_then(|mut w| w.write());
        if let Err(e) = result {
            fail("GLSL", format!("{e:?}"));
        }
    }
    failures
}

#[test]
fn every_shader_parses_and_validates() {
    for &shader in Shader::ALL {
        let module = parse(shader);
        validate(shader, &module);
    }
}

/// Every configuration of the generated GEMM family is an entry point of
/// its module, and the specs translate each one.
#[test]
fn every_generated_gemm_configuration_is_in_its_module_and_translated() {
    use manytask::kernels::gemm::generator::{search_space, Module};
    let specs = all_specs();
    let plain = parse(Shader::Gemm);
    let subgroup = parse(Shader::GemmSubgroup);
    for config in search_space() {
        let (shader, module) = match config.module() {
            Module::Plain => (Shader::Gemm, &plain),
            Module::Subgroup => (Shader::GemmSubgroup, &subgroup),
        };
        let entry = config.entry();
        assert!(
            module.entry_points.iter().any(|e| e.name == entry),
            "{} missing from shaders/{}.wgsl",
            config.name(),
            shader.name()
        );
        if config.reads_transposed_a4() {
            let twin = config.entry_transposed_a();
            assert!(
                module.entry_points.iter().any(|e| e.name == twin),
                "{twin} missing from shaders/{}.wgsl",
                shader.name()
            );
        }
        for f16 in [false, true] {
            let shader = match (shader, f16) {
                (Shader::Gemm, true) => Shader::GemmF16,
                (Shader::GemmSubgroup, true) => Shader::GemmSubgroupF16,
                (s, _) => s,
            };
            assert!(
                specs.iter().any(|s| s.shader == shader && s.entry == entry),
                "no spec translates {} in {}",
                config.name(),
                shader.name()
            );
        }
    }
}

#[test]
fn every_kernel_pipeline_translates_to_spirv_msl_hlsl_and_glsl() {
    let specs = all_specs();
    assert!(!specs.is_empty());
    let failures: Vec<String> = specs.iter().flat_map(cross_compile).collect();
    assert!(
        failures.is_empty(),
        "{} translation failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// An entry point no launcher lists would escape the translation test (and
/// be dead code); every shader must also be used by some launcher.
#[test]
fn every_entry_point_of_every_shader_is_covered_by_a_kernel_spec() {
    let specs = all_specs();
    for &shader in Shader::ALL {
        let module = parse(shader);
        let declared: BTreeSet<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        let used: BTreeSet<&str> = specs
            .iter()
            .filter(|s| s.shader == shader)
            .map(|s| s.entry)
            .collect();
        assert!(
            !used.is_empty(),
            "shaders/{}.wgsl is used by no launcher",
            shader.name()
        );
        let missing: Vec<_> = declared.difference(&used).collect();
        assert!(
            missing.is_empty(),
            "shaders/{}.wgsl: entry points with no KernelSpec: {missing:?}",
            shader.name()
        );
        let unknown: Vec<_> = used.difference(&declared).collect();
        assert!(
            unknown.is_empty(),
            "shaders/{}.wgsl: specs name missing entry points {unknown:?}",
            shader.name()
        );
    }
}

/// The translation check must be able to fail: an f16 kernel forced
/// through GLSL (which has no 16-bit floats) is reported, and a missing
/// override constant is reported.
#[test]
fn the_translation_check_reports_a_backend_that_cannot_express_a_shader() {
    let src = "enable f16;\n\
               override SCALE: u32;\n\
               @group(0) @binding(1) var<storage, read_write> x: array<f16>;\n\
               @compute @workgroup_size(64) fn halve(@builtin(global_invocation_id) id: vec3<u32>) {\n\
                   x[id.x] = x[id.x] * f16(SCALE);\n\
               }";
    let module = naga::front::wgsl::parse_str(src).unwrap();
    let info = Validator::new(ValidationFlags::all(), capabilities())
        .validate(&module)
        .unwrap();
    let failures = translate(
        "test::halve",
        &module,
        &info,
        "halve",
        &[("SCALE", 2)],
        Glsl::Always,
    );
    assert!(
        failures.len() == 1 && failures[0].contains("GLSL"),
        "{failures:?}"
    );
    let failures = translate("test::halve", &module, &info, "halve", &[], Glsl::UnlessF16);
    assert!(
        failures.len() == 1 && failures[0].contains("overrides"),
        "{failures:?}"
    );
}
