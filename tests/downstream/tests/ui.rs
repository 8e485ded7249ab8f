//! Compile errors a crate sees when it depends on `component_model` with feature `async`
//! only (the workspace's UI suite enables every backend; features off are tested here).
//! Regenerate after an intended change with `TRYBUILD=overwrite cargo test -p downstream_facade_only`.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("ui/fail/*.rs");
}
