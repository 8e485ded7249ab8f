//! Compile-time behaviour of the derives: `ui/pass` must compile, `ui/fail` must fail with
//! exactly the errors in the `.stderr` beside each file (spans included).
//! Regenerate after an intended change with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
