//! Buffer planning by liveness: every intermediate of a training step
//! (activations, their gradients, saved pre-activations, scratch) has an
//! interval [def, last use] on the step's schedule; intervals that do not
//! overlap share a buffer. Greedy best fit in definition order; a buffer
//! freed after its last use (strictly before the next definition) is
//! reused. Pure host code: tested without a GPU.

/// One tensor's lifetime, in schedule positions, and its size in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Position where it is written first.
    pub def: usize,
    /// Position of its last read (≥ def).
    pub last_use: usize,
    /// Elements.
    pub len: usize,
}

/// Which buffer (slot) each tensor lives in, and each slot's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Slot of each tensor, in `intervals` order.
    pub slot_of: Vec<usize>,
    /// Elements of each slot: the largest tensor it holds.
    pub slot_len: Vec<usize>,
}

impl Plan {
    /// Elements of all slots: the planned peak.
    pub fn planned_elems(&self) -> usize {
        self.slot_len.iter().sum()
    }
}

/// Elements if every tensor had its own buffer.
pub fn no_reuse_elems(intervals: &[Interval]) -> usize {
    intervals.iter().map(|i| i.len).sum()
}

/// Assigns every interval a slot, greedy best fit in definition order.
pub fn plan(intervals: &[Interval]) -> Plan {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| (intervals[i].def, i));
    let mut slot_len: Vec<usize> = Vec::new();
    // Last use of the tensor currently in each slot.
    let mut busy_until: Vec<usize> = Vec::new();
    let mut slot_of = vec![usize::MAX; intervals.len()];
    for i in order {
        let t = intervals[i];
        let free = |s: usize| busy_until[s] < t.def;
        // Best fit among free slots large enough; else grow the largest
        // free slot; else a new slot.
        let fit = (0..slot_len.len())
            .filter(|&s| free(s) && slot_len[s] >= t.len)
            .min_by_key(|&s| (slot_len[s], s));
        let slot = match fit {
            Some(s) => s,
            None => match (0..slot_len.len())
                .filter(|&s| free(s))
                .max_by_key(|&s| (slot_len[s], usize::MAX - s))
            {
                Some(s) => {
                    slot_len[s] = t.len;
                    s
                }
                None => {
                    slot_len.push(t.len);
                    busy_until.push(0);
                    slot_len.len() - 1
                }
            },
        };
        busy_until[slot] = t.last_use;
        slot_of[i] = slot;
    }
    Plan { slot_of, slot_len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lifetimes_share_and_overlapping_ones_do_not() {
        let iv = |def, last_use, len| Interval { def, last_use, len };
        let ts = [iv(0, 2, 10), iv(1, 3, 10), iv(3, 4, 10), iv(4, 5, 8)];
        let p = plan(&ts);
        // 0 dies at 2 < 3: tensor 2 reuses its slot; 1 dies at 3, not < 4? 3 < 4: 3 reuses.
        assert_ne!(p.slot_of[0], p.slot_of[1]);
        assert_eq!(p.slot_of[2], p.slot_of[0]);
        assert_eq!(p.slot_of[3], p.slot_of[1]);
        assert_eq!(p.planned_elems(), 20);
        assert_eq!(no_reuse_elems(&ts), 38);
        // A tensor defined where another is last used never shares with it.
        let q = plan(&[iv(0, 1, 4), iv(1, 1, 4)]);
        assert_ne!(q.slot_of[0], q.slot_of[1]);
    }
}
