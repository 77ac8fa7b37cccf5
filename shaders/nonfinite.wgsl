// Non-finite watch family: a persistent record, on the GPU, of the first
// optimiser step whose per-task losses hold a NaN or ±inf, so divergence
// is reported at its true step and task even when the losses are read back
// only every few steps. No atomics: one workgroup, a fixed-order min tree.
//
// Entry points (tests: kernels-tests/nonfinite.rs, cases in
// src/conformance/nonfinite.rs; launcher src/kernels/nonfinite.rs):
//   watch_losses  losses [T] (f32, read as raw bits), record [4] (u32):
//                 when any loss of this step is non-finite, count the step
//                 in record[3] (saturating) and, if record[0] == 0 (empty),
//                 set record[0..3] = [step, t, kind]: t the lowest
//                 non-finite task, kind 1 NaN / 2 +inf / 3 −inf.
//                 A set record is never overwritten (the host resets it by
//                 writing zeros). 256 lanes stride over T, each keeping its
//                 lowest hit, then a min tree in workgroup memory.

struct Params {
    tasks: u32,  // T
    step: u32,   // the optimiser step these losses belong to (≥ 1)
    _pad0: u32,
    _pad1: u32,
}

// Record layout (kept in step with src/kernels/nonfinite.rs).
const FIRST_STEP: u32 = 0u;   // 0: empty
const FIRST_TASK: u32 = 1u;
const FIRST_KIND: u32 = 2u;   // 1 NaN, 2 +inf, 3 −inf
const BAD_STEPS: u32 = 3u;    // steps with any non-finite loss, saturating

const NONE: u32 = 0xffffffffu;
const EXPONENT: u32 = 0x7f800000u;
const MANTISSA: u32 = 0x007fffffu;
const SIGN: u32 = 0x80000000u;

@group(0) @binding(0) var<uniform> p: Params;
// The f32 losses bound as their bit patterns: no float load or compare
// that a compiler could fold (x != x) or flush (subnormals) stands between
// the data and the test.
@group(0) @binding(1) var<storage, read> loss_bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> record: array<u32>;

var<workgroup> lowest: array<u32, 256>;

// Inf or NaN: every exponent bit set.
fn non_finite(bits: u32) -> bool {
    return (bits & EXPONENT) == EXPONENT;
}

fn kind_of(bits: u32) -> u32 {
    if ((bits & MANTISSA) != 0u) { return 1u; }
    return select(2u, 3u, (bits & SIGN) != 0u);
}

@compute @workgroup_size(256)
fn watch_losses(@builtin(local_invocation_index) lid: u32) {
    // Each lane's tasks ascend, so its first hit is its lowest.
    var hit = NONE;
    for (var t = lid; t < p.tasks; t = t + 256u) {
        if (non_finite(loss_bits[t])) {
            hit = t;
            break;
        }
    }
    lowest[lid] = hit;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) { lowest[lid] = min(lowest[lid], lowest[lid + s]); }
        workgroupBarrier();
    }
    if (lid != 0u) { return; }
    let task = lowest[0];
    if (task == NONE) { return; }
    let bad = record[BAD_STEPS];
    record[BAD_STEPS] = select(bad + 1u, bad, bad == NONE);
    if (record[FIRST_STEP] == 0u) {
        record[FIRST_STEP] = p.step;
        record[FIRST_TASK] = task;
        record[FIRST_KIND] = kind_of(loss_bits[task]);
    }
}
