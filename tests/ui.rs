//! Compile-time behaviour of the derives: `ui/pass` must compile, `ui/fail` must fail with
//! exactly the errors in the `.stderr` beside each file (spans included).
//! Regenerate after an intended change with `TRYBUILD=overwrite cargo test --test ui`.
//!
//! Two sets, not one: trybuild checks a set made only of `compile_fail` cases in one
//! `cargo check --keep-going` (cargo runs the files in parallel), while a set that also
//! holds `pass` cases is built file by file — with ~70 files, minutes apart.

#[test]
fn ui_pass() {
    trybuild::TestCases::new().pass("ui/pass/*.rs");
}

#[test]
fn ui_fail() {
    trybuild::TestCases::new().compile_fail("ui/fail/*.rs");
}
