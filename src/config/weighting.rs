//! `[train.weighting]` (or `weighting = "name"`): a task-balancing
//! method by the name `--weighting` takes, with its hyper-parameters,
//! turned into `weighting::Weighting`.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{invalid, misplaced, quoted};
use crate::weighting::{
    self, CaGradRescale, GradNormMode, GradNormUpdate, MgdaNormalisation, Weighting,
};

/// `train.weighting`: a method name as `--weighting` takes it, and the
/// hyper-parameters of `Weighting` (each only for its method).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightingConfig {
    /// equal, static, uncertainty, uncertainty_warm, gradnorm, dwa, pcgrad, mgda, mgda_ub,
    /// cagrad, imtl_g, rlw, upgrad, aligned_mtl, nash_mtl, fairgrad, db_mtl,
    /// gls, stch, famo, gradvac, graddrop, excess_mtl, moco (or
    /// static:w1,w2,…).
    pub method: String,
    /// static: one weight per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f32>>,
    /// gradnorm: α (default 1.5); fairgrad: the fairness a (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// gradnorm: the weights' learning rate (default 0.025); famo: the
    /// logits' learning rate (default 0.025).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// gradnorm: last_shared_layer (default) or all_shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// gradnorm: how the weights follow their gradient, adam (default) or
    /// gradient (plain descent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// dwa: temperature (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// mgda, mgda_ub: none (default), l2, loss or loss+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<String>,
    /// cagrad: c (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<f64>,
    /// cagrad: rescale 0, 1 (default) or 2, as LibMTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescale: Option<u32>,
    /// upgrad: a Gram of trace below it counts as zero (default 1e-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_eps: Option<f64>,
    /// upgrad: added to the normalised Gram's diagonal (default 1e-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg_eps: Option<f64>,
    /// nash_mtl: largest norm of the combined shared gradient (default 1;
    /// 0: no clip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_norm: Option<f64>,
    /// stch: smoothing μ (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<f64>,
    /// stch: epochs of log losses before the nadir epoch (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<u32>,
    /// famo: the logits' weight decay (default 1e-3); moco: λ's step
    /// size (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// gradvac: the target cosines' EMA rate (default 0.5); moco: the
    /// tracking rate (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// graddrop: share of a dropped gradient kept, in [0, 1] (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak: Option<f64>,
    /// excess_mtl: the weights' multiplicative step (default 1e-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// moco: β's decay exponent (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_sigma: Option<f64>,
    /// moco: γ's decay exponent (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma_sigma: Option<f64>,
    /// moco: λ's L2 regularisation (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rho: Option<f64>,
}

impl WeightingConfig {
    /// A method with default hyper-parameters.
    pub fn named(method: &str) -> WeightingConfig {
        WeightingConfig {
            method: method.to_string(),
            weights: None,
            alpha: None,
            lr: None,
            mode: None,
            update: None,
            temperature: None,
            normalisation: None,
            c: None,
            rescale: None,
            norm_eps: None,
            reg_eps: None,
            max_norm: None,
            mu: None,
            warmup_epochs: None,
            gamma: None,
            beta: None,
            leak: None,
            step_size: None,
            beta_sigma: None,
            gamma_sigma: None,
            rho: None,
        }
    }

    /// The weighting, each hyper-parameter checked against the method.
    pub fn weighting(&self) -> Result<Weighting, String> {
        let key = "train.weighting";
        let mut w = weighting::parse(&self.method).map_err(|_| {
            invalid(
                format!("{key}.method"),
                quoted(&self.method),
                format!(
                    "expected one of {} (or static:w1,w2,…)",
                    weighting::WEIGHTING_NAMES.join(", ")
                ),
            )
        })?;
        // Each set key must belong to the method: (key, set, methods).
        let owners = [
            ("weights", self.weights.is_some(), "static"),
            ("alpha", self.alpha.is_some(), "gradnorm and fairgrad"),
            ("lr", self.lr.is_some(), "gradnorm and famo"),
            ("mode", self.mode.is_some(), "gradnorm"),
            ("update", self.update.is_some(), "gradnorm"),
            ("temperature", self.temperature.is_some(), "dwa"),
            (
                "normalisation",
                self.normalisation.is_some(),
                "mgda and mgda_ub",
            ),
            ("c", self.c.is_some(), "cagrad"),
            ("rescale", self.rescale.is_some(), "cagrad"),
            ("norm_eps", self.norm_eps.is_some(), "upgrad"),
            ("reg_eps", self.reg_eps.is_some(), "upgrad"),
            ("max_norm", self.max_norm.is_some(), "nash_mtl"),
            ("mu", self.mu.is_some(), "stch"),
            ("warmup_epochs", self.warmup_epochs.is_some(), "stch"),
            ("gamma", self.gamma.is_some(), "famo and moco"),
            ("beta", self.beta.is_some(), "gradvac and moco"),
            ("leak", self.leak.is_some(), "graddrop"),
            ("step_size", self.step_size.is_some(), "excess_mtl"),
            ("beta_sigma", self.beta_sigma.is_some(), "moco"),
            ("gamma_sigma", self.gamma_sigma.is_some(), "moco"),
            ("rho", self.rho.is_some(), "moco"),
        ];
        for (field, set, methods) in owners {
            if set && !methods.split(" and ").any(|m| m == w.name()) {
                return Err(misplaced(
                    format!("{key}.{field}"),
                    format!("only for method {methods} (this is {})", w.name()),
                ));
            }
        }
        match &mut w {
            Weighting::Static(weights) => {
                if let Some(v) = &self.weights {
                    if !weights.is_empty() {
                        return Err(misplaced(
                            format!("{key}.weights"),
                            "given twice (in the method name and as weights)",
                        ));
                    }
                    *weights = v.clone();
                }
            }
            Weighting::GradNorm {
                alpha,
                lr,
                mode,
                update,
            } => {
                *update = match self.update.as_deref() {
                    None | Some("adam") => GradNormUpdate::Adam,
                    Some("gradient") => GradNormUpdate::Gradient,
                    Some(other) => {
                        return Err(invalid(
                            format!("{key}.update"),
                            quoted(other),
                            "expected adam or gradient",
                        ))
                    }
                };
                *alpha = self.alpha.unwrap_or(*alpha);
                *lr = self.lr.unwrap_or(*lr);
                *mode = match self.mode.as_deref() {
                    None | Some("last_shared_layer") => GradNormMode::LastSharedLayer,
                    Some("all_shared") => GradNormMode::AllShared,
                    Some(other) => {
                        return Err(invalid(
                            format!("{key}.mode"),
                            quoted(other),
                            "expected last_shared_layer or all_shared",
                        ))
                    }
                };
            }
            Weighting::Dwa { temperature } => {
                *temperature = self.temperature.unwrap_or(*temperature)
            }
            Weighting::Mgda { normalisation, .. } => {
                if let Some(n) = &self.normalisation {
                    *normalisation = MgdaNormalisation::parse(n).map_err(|_| {
                        invalid(
                            format!("{key}.normalisation"),
                            quoted(n),
                            "expected none, l2, loss or loss+",
                        )
                    })?;
                }
            }
            Weighting::CaGrad { c, rescale } => {
                *c = self.c.unwrap_or(*c);
                if let Some(code) = self.rescale {
                    *rescale = CaGradRescale::from_code(code).map_err(|_| {
                        invalid(
                            format!("{key}.rescale"),
                            code,
                            "expected 0 (none), 1 (/(1+c²)) or 2 (/(1+c))",
                        )
                    })?;
                }
            }
            Weighting::UpGrad { norm_eps, reg_eps } => {
                *norm_eps = self.norm_eps.unwrap_or(*norm_eps);
                *reg_eps = self.reg_eps.unwrap_or(*reg_eps);
            }
            Weighting::NashMtl { max_norm } => *max_norm = self.max_norm.unwrap_or(*max_norm),
            Weighting::FairGrad { alpha } => *alpha = self.alpha.unwrap_or(*alpha),
            Weighting::Stch { mu, warmup_epochs } => {
                *mu = self.mu.unwrap_or(*mu);
                *warmup_epochs = self.warmup_epochs.unwrap_or(*warmup_epochs);
            }
            Weighting::Famo { lr, gamma } => {
                *lr = self.lr.unwrap_or(*lr);
                *gamma = self.gamma.unwrap_or(*gamma);
            }
            Weighting::GradVac { beta } => *beta = self.beta.unwrap_or(*beta),
            Weighting::GradDrop { leak } => *leak = self.leak.unwrap_or(*leak),
            Weighting::ExcessMtl { step_size } => *step_size = self.step_size.unwrap_or(*step_size),
            Weighting::MoCo(o) => {
                o.beta = self.beta.unwrap_or(o.beta);
                o.beta_sigma = self.beta_sigma.unwrap_or(o.beta_sigma);
                o.gamma = self.gamma.unwrap_or(o.gamma);
                o.gamma_sigma = self.gamma_sigma.unwrap_or(o.gamma_sigma);
                o.rho = self.rho.unwrap_or(o.rho);
            }
            _ => {}
        }
        // Domains (static weights are counted against the tasks when the
        // balancer is made).
        if !matches!(w, Weighting::Static(_)) {
            w.check(1).map_err(|e| format!("{key}: {e}"))?;
        }
        Ok(w)
    }
}

impl<'de> Deserialize<'de> for WeightingConfig {
    /// Either a name (`weighting = "gradnorm"`) or a table (`weighting =
    /// { method = "gradnorm", alpha = 1.0 }`), whose unknown keys are
    /// errors.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameOrTable;
        impl<'de> Visitor<'de> for NameOrTable {
            type Value = WeightingConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a weighting name or a table with `method`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WeightingConfig, E> {
                Ok(WeightingConfig::named(s))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<WeightingConfig, M::Error> {
                WeightingTable::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(NameOrTable)
    }
}

/// The table form of `WeightingConfig`, with its strict key list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "WeightingConfig")]
struct WeightingTable {
    method: String,
    #[serde(default)]
    weights: Option<Vec<f32>>,
    #[serde(default)]
    alpha: Option<f64>,
    #[serde(default)]
    lr: Option<f64>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    update: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    normalisation: Option<String>,
    #[serde(default)]
    c: Option<f64>,
    #[serde(default)]
    rescale: Option<u32>,
    #[serde(default)]
    norm_eps: Option<f64>,
    #[serde(default)]
    reg_eps: Option<f64>,
    #[serde(default)]
    max_norm: Option<f64>,
    #[serde(default)]
    mu: Option<f64>,
    #[serde(default)]
    warmup_epochs: Option<u32>,
    #[serde(default)]
    gamma: Option<f64>,
    #[serde(default)]
    beta: Option<f64>,
    #[serde(default)]
    leak: Option<f64>,
    #[serde(default)]
    step_size: Option<f64>,
    #[serde(default)]
    beta_sigma: Option<f64>,
    #[serde(default)]
    gamma_sigma: Option<f64>,
    #[serde(default)]
    rho: Option<f64>,
}
