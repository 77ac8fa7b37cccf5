//! `manytask validate` must fail when a kernel disagrees with its
//! reference: proven by feeding real cases a deliberately wrong reference.

use std::sync::Arc;

use manytask::cli::validate::validate;
use manytask::conformance::{self, Case, Expected};

use crate::common::contexts;

fn few_cases() -> Vec<Case> {
    conformance::all_cases()
        .into_iter()
        .filter(|c| {
            c.case == "n=257" || c.case == "n=257 integers" || c.case == "rows=7 cols=3 integers"
        })
        .filter(|c| c.kernel == "elementwise::add" || c.kernel.starts_with("reduce::"))
        .collect()
}

#[test]
fn validate_passes_on_correct_references() {
    let cases = few_cases();
    assert_eq!(cases.len(), 4, "add, sum, sum_squares, column_sums");
    let mut out = Vec::new();
    let failures = validate(contexts(), &cases, false, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(failures, 0, "{text}");
    assert!(text.contains("0 failed"), "{text}");
}

#[test]
fn validate_fails_when_the_reference_is_deliberately_wrong() {
    // Each reference is nudged at one element by far less than the data's
    // magnitude but far more than the tolerance.
    let wrong: Vec<Case> = few_cases()
        .into_iter()
        .map(|case| {
            let right = case.reference.clone();
            case.with_reference(Arc::new(move |inputs| {
                let Expected {
                    mut values,
                    tolerance,
                } = right(inputs);
                let last = values.len() - 1;
                values[last] += 0.5;
                Expected { values, tolerance }
            }))
        })
        .collect();
    let expected_failures = wrong.len() * contexts().len();

    let mut table = Vec::new();
    assert_eq!(
        validate(contexts(), &wrong, false, &mut table),
        expected_failures
    );
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("FAIL") && table.contains("FAILED:"),
        "{table}"
    );

    let mut json = Vec::new();
    assert_eq!(
        validate(contexts(), &wrong, true, &mut json),
        expected_failures
    );
    let json = String::from_utf8(json).unwrap();
    assert_eq!(json.lines().count(), expected_failures);
    for line in json.lines() {
        assert!(line.contains("\"pass\":false"), "{line}");
        assert!(line.contains("\"worst_index\""), "{line}");
    }
}
