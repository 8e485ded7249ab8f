//! The sync component model end to end: assign fields by type, chain, set by name, read a
//! field back by type, and build a struct from one value.
//!
//! Run: `cargo run --example sync_model`

use component_model::{Assign, ComponentModel};

#[derive(ComponentModel, Default, Debug, Clone)]
struct Server {
    host: String,
    port: u16,
    tags: Vec<String>,
    tls: bool,
}

/// Something that knows every component of a `Server` (e.g. a profile name).
#[derive(Clone)]
struct Profile(&'static str);

impl From<Profile> for String {
    fn from(p: Profile) -> String {
        format!("{}.example.org", p.0)
    }
}
impl From<Profile> for u16 {
    fn from(p: Profile) -> u16 {
        if p.0 == "prod" { 443 } else { 8080 }
    }
}
impl From<Profile> for Vec<String> {
    fn from(p: Profile) -> Vec<String> {
        vec![p.0.to_owned()]
    }
}
impl From<Profile> for bool {
    fn from(p: Profile) -> bool {
        p.0 == "prod"
    }
}

fn main() {
    // Assign by type: the compiler picks the field from the value's type.
    let mut dev = Server::default();
    dev.assign("localhost");
    dev.assign(3000u16);
    dev.assign(vec!["dev".to_owned()]);
    // `bool` converts into `u16` too, so `assign(true)` would be ambiguous: use the setter.
    dev.tls_set(false);
    println!("assigned:      {dev:?}");

    // Chain with impute / <field>_with.
    let staging = Server::default()
        .impute("staging.local")
        .impute(8443u16)
        .tls_with(true);
    println!("chained:       {staging:?}");

    // Read a component back by type (ComponentFrom).
    let port: u16 = (&staging).into();
    let host: String = (&staging).into();
    println!("components:    host={host} port={port}");

    // Build from one value convertible into every field (FromComponents).
    let prod: Server = Profile("prod").into();
    println!("from profile:  {prod:?}");

    // Assign every component from one value (ServerComponentsAssign).
    let mut s = Server::default();
    s.server_assign(Profile("qa"));
    println!("assign all:    {s:?}");
}
