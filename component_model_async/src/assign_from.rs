//! `AssignFrom<F>`: assignment by handing over a fetcher (issue 31, item 9). Being built.

/// Sets the field whose source and type the fetcher `F` serves (being built).
pub trait AssignFrom<F> {}
