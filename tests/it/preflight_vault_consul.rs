//! Preflight: see the module docs of each case.
