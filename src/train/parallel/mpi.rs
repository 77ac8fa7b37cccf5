//! The all-reduce across processes on MPI (cargo feature `mpi`): one
//! replica per rank (or per adapter of a rank), the vectors gathered with
//! `MPI_Allgather` and summed on every rank in global replica order
//! (`reducer`'s fixed order: reruns are bit-identical; MPI's own
//! reduction order is not documented, so `MPI_Allreduce` is not used).
//!
//! A rank that dies takes the run down: `mpirun` aborts the job when a
//! process exits abnormally, and an error on one rank calls
//! `MPI_Abort` (`Reducer::abort`) instead of waiting in `MPI_Finalize`.

use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::error::{Error, Result};
use crate::train::parallel::reducer::{Precision, Reducer};

/// MPI, initialised for this process: finalised when dropped, which every
/// rank must reach; a rank that fails calls [`abort`] instead, before this
/// is dropped.
pub struct MpiSession {
    _universe: Universe,
}

impl MpiSession {
    /// Initialises MPI (once per process; an error the second time).
    pub fn start() -> Result<MpiSession> {
        let universe = mpi::initialize().ok_or_else(|| Error::Internal {
            op: "mpi",
            detail: "MPI is already initialised in this process".into(),
        })?;
        Ok(MpiSession {
            _universe: universe,
        })
    }

    /// The all-reduce over the world's ranks.
    pub fn reducer(&self) -> MpiReducer {
        MpiReducer {
            world: SimpleCommunicator::world(),
        }
    }
}

/// Stops every rank of the world (`MPI_Abort`): what a rank that failed
/// does, so that no other rank waits for it in a collective.
pub fn abort(code: i32) -> ! {
    SimpleCommunicator::world().abort(code)
}

/// The gradient exchange over `MPI_COMM_WORLD`.
pub struct MpiReducer {
    world: SimpleCommunicator,
}

impl Reducer for MpiReducer {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn processes(&self) -> usize {
        self.world.size() as usize
    }

    fn gather(&mut self, local: &[Vec<f32>], precision: Precision) -> Result<Vec<Vec<f32>>> {
        let len = local.first().map_or(0, Vec::len);
        let per_rank = local.len();
        let ranks = self.processes();
        let parts = ranks * per_rank;
        let flat: Vec<Vec<f32>> = match precision {
            Precision::F32 => {
                let send: Vec<f32> = local.concat();
                let mut recv = vec![0f32; send.len() * ranks];
                self.world.all_gather_into(&send[..], &mut recv[..]);
                recv.chunks(len.max(1)).map(<[f32]>::to_vec).collect()
            }
            Precision::F16 => {
                let send: Vec<u16> = local
                    .iter()
                    .flatten()
                    .map(|&x| half::f16::from_f32(x).to_bits())
                    .collect();
                let mut recv = vec![0u16; send.len() * ranks];
                self.world.all_gather_into(&send[..], &mut recv[..]);
                recv.chunks(len.max(1))
                    .map(|c| {
                        c.iter()
                            .map(|&b| half::f16::from_bits(b).to_f32())
                            .collect()
                    })
                    .collect()
            }
        };
        Ok(if len == 0 {
            vec![Vec::new(); parts]
        } else {
            flat
        })
    }

    fn broadcast(&mut self, data: &mut [f32]) -> Result<()> {
        self.world.process_at_rank(0).broadcast_into(data);
        Ok(())
    }

    fn gather_words(&mut self, local: &[u64]) -> Result<Vec<u64>> {
        let mut recv = vec![0u64; local.len() * self.processes()];
        self.world.all_gather_into(local, &mut recv[..]);
        Ok(recv)
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
