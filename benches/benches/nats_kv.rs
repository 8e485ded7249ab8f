//! (being written: issue 34)
fn main() {}
