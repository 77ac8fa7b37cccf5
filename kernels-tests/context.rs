//! Adapter selection, granted features and the errors around them.

use manytask::gpu::{BackendChoice, GpuContext, KernelSpec, Shader};
use manytask::Error;

use crate::common::{contexts, REQUIRE_ENV};

/// CI lists the backends it installed; each must have been found, so the
/// suite cannot quietly test fewer adapters than the machine has.
#[test]
fn every_required_backend_is_present_and_tested() {
    let found: Vec<String> = contexts()
        .iter()
        .map(|c| format!("{:?}", c.backend()).to_lowercase())
        .collect();
    eprintln!(
        "testing on: {:?}",
        contexts().iter().map(|c| c.describe()).collect::<Vec<_>>()
    );
    let required = std::env::var(REQUIRE_ENV).unwrap_or_default();
    for want in required.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        assert!(
            found.iter().any(|f| f == want),
            "{REQUIRE_ENV} wants {want}, found only {found:?}"
        );
    }
}

#[test]
fn each_backend_can_be_chosen_explicitly() {
    for ctx in contexts() {
        let again = GpuContext::new(ctx.backend_choice()).unwrap();
        assert_eq!(again.backend(), ctx.backend());
    }
}

#[test]
fn auto_prefers_a_modern_api_over_gl_on_equal_devices() {
    let best = GpuContext::new(BackendChoice::Auto).unwrap();
    let has_modern = contexts().iter().any(|c| c.backend() != wgpu::Backend::Gl);
    if has_modern {
        assert_ne!(
            best.backend(),
            wgpu::Backend::Gl,
            "auto picked {}",
            best.describe()
        );
    }
    // And it is the first of the ranked list.
    assert_eq!(best.describe(), contexts()[0].describe());
}

#[test]
fn backend_names_parse_and_unknown_ones_are_clear_errors() {
    assert_eq!(
        "Vulkan".parse::<BackendChoice>().unwrap(),
        BackendChoice::Vulkan
    );
    assert_eq!("gl".parse::<BackendChoice>().unwrap(), BackendChoice::Gl);
    assert_eq!(
        "dx12".parse::<BackendChoice>().unwrap(),
        BackendChoice::Dx12
    );
    let err = "cuda".parse::<BackendChoice>().unwrap_err();
    assert!(matches!(err, Error::UnknownBackend(_)));
    assert!(err.to_string().contains("vulkan, metal, dx12, gl"), "{err}");
}

/// A backend this platform cannot have gives NoAdapter with what exists
/// and what to do.
#[test]
fn a_missing_backend_is_a_no_adapter_error_with_a_hint() {
    let absent = if cfg!(target_os = "macos") {
        BackendChoice::Dx12
    } else {
        BackendChoice::Metal
    };
    let err = GpuContext::new(absent).unwrap_err();
    assert!(matches!(err, Error::NoAdapter { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("--backend") && msg.contains("MANYTASK_BACKEND"),
        "{msg}"
    );
    assert!(
        msg.contains(&contexts()[0].info().name),
        "lists what was found: {msg}"
    );
}

#[test]
fn granted_features_are_a_subset_of_what_the_adapter_offers() {
    for ctx in contexts() {
        let g = ctx.granted();
        assert!(ctx.adapter().features().contains(g.features));
        assert_eq!(g.subgroup, g.features.contains(wgpu::Features::SUBGROUP));
        if g.subgroup {
            assert!(g.subgroup_min_size >= 1 && g.subgroup_min_size <= g.subgroup_max_size);
        }
        // Offered means granted: we ask for every feature kernels can use.
        if ctx
            .adapter()
            .features()
            .contains(wgpu::Features::SHADER_F16)
        {
            assert!(g.shader_f16);
        }
    }
}

/// A broken pipeline request comes back as an error from the error scope,
/// not as wgpu's default panic.
#[test]
fn a_wgpu_validation_error_is_returned_not_panicked() {
    for ctx in contexts() {
        let bogus = KernelSpec::new(Shader::Elementwise, "no_such_entry_point");
        let err = ctx
            .pipeline(&bogus)
            .err()
            .expect("an unknown entry point must fail");
        assert!(matches!(err, Error::Wgpu { .. }), "{err:?}");
        assert!(err.to_string().contains("no_such_entry_point"), "{err}");
        let unknown_constant =
            KernelSpec::new(Shader::Elementwise, "act_forward").with("NOT_AN_OVERRIDE", 1);
        assert!(ctx.pipeline(&unknown_constant).is_err());
    }
}
