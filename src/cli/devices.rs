//! `--devices`: the adapters of data-parallel replicas, parsed and
//! opened (`BACKEND[:INDEX],…` or `all`). The replicas themselves are the
//! training layer's (`train::parallel`).

use crate::error::{Error, Result};
use crate::gpu::{BackendChoice, GpuContext};

/// One entry of `--devices`: the INDEX-th adapter (best first) of BACKEND.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceArg {
    /// The API.
    pub backend: BackendChoice,
    /// Which of its adapters, best first.
    pub index: usize,
}

/// `--devices` parsed: `all`, or entries `BACKEND[:INDEX]` (`vulkan:0`,
/// `gl`). An entry may repeat: each opens its own device on the adapter
/// (two logical devices on one GPU, or on lavapipe).
pub fn parse(text: &str) -> Result<Option<Vec<DeviceArg>>> {
    let bad = |detail: String| Error::InvalidInput {
        op: "--devices",
        detail,
    };
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let (name, index) = match entry.split_once(':') {
            Some((n, i)) => (
                n,
                i.parse::<usize>()
                    .map_err(|_| bad(format!("'{entry}': the index after ':' is not a number")))?,
            ),
            None => (entry, 0),
        };
        let backend = name
            .parse::<BackendChoice>()
            .map_err(|e| bad(format!("'{entry}': {e}")))?;
        out.push(DeviceArg { backend, index });
    }
    if out.is_empty() {
        return Err(bad("no device given".into()));
    }
    Ok(Some(out))
}

/// Opens the devices `--devices` names: one context per entry, or one
/// per adapter for `all`.
pub fn open(text: &str) -> Result<Vec<GpuContext>> {
    let Some(entries) = parse(text)? else {
        return GpuContext::all(BackendChoice::Auto);
    };
    entries
        .iter()
        .map(|d| {
            let mut all = GpuContext::all(d.backend)?;
            let found = all.len();
            if d.index >= found {
                return Err(Error::InvalidInput {
                    op: "--devices",
                    detail: format!(
                        "{:?}:{} asked for, but {found} adapter(s) of that backend opened (indices \
                         0..{found}; repeat an entry to open another device on the same adapter)",
                        d.backend, d.index
                    ),
                });
            }
            Ok(all.swap_remove(d.index))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_with_and_without_an_index() {
        let d = parse("vulkan:0, gl ,vulkan:1").unwrap().unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[1].backend, BackendChoice::Gl);
        assert_eq!((d[2].backend, d[2].index), (BackendChoice::Vulkan, 1));
        assert_eq!(parse("ALL").unwrap(), None);
        assert!(parse("vulkan:x").is_err());
        assert!(parse("cuda:0").is_err());
    }
}
