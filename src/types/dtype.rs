//! Element types a GPU tensor can hold (the host-side names; no GPU
//! code here).

use std::fmt;

/// Element types a tensor can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE single precision.
    F32,
    /// IEEE half; host I/O through the `half` crate. Kernels that take f16
    /// say so; the others reject it with `Error::DType`.
    F16,
    /// 32-bit unsigned integers: class labels, task tables. Only kernels
    /// that document a u32 operand accept it.
    U32,
}

impl DType {
    /// Bytes per element.
    pub fn size_bytes(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::U32 => 4,
        }
    }
}

impl DType {
    /// "f32", "f16" or "u32" (the WGSL name), for messages.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
