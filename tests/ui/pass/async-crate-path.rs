//! `#[component(crate = path)]`: the generated code reaches the runtime through `path`
//! (a crate that re-exports component_model), not `::component_model`.

/// A crate's re-export of component_model, as a library built on it would have.
mod facade {
    pub use component_model as cm;
}

/// A re-export whose `__private` is partly the test's own: the derive's marker impl lands
/// on this module's `AsyncAssignDerived` only when the derive goes through `crate = ...`.
mod shim {
    pub use component_model::*;
    pub mod __private {
        pub trait AsyncAssignDerived {}
        pub use component_model::__private::asynchronous;
    }
}

#[derive(facade::cm::AsyncAssign, Debug)]
#[component(crate = facade::cm)]
struct ThroughReexport {
    #[component(fetch_from = "env", key = "CM_PORT")]
    port: u16,
}

#[derive(component_model::AsyncAssign, Debug)]
#[component(crate = "shim")]
struct ThroughShim {
    #[component(fetch_from = "env", key = "CM_NAME", fallback = "none")]
    name: String,
}

fn through_the_path<T: shim::__private::AsyncAssignDerived>() {}

fn main() {
    through_the_path::<ThroughShim>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sources = facade::cm::Sources::new().with_env(facade::cm::EnvSource::from_map([
            ("CM_PORT", "8080"),
            ("CM_NAME", "app"),
        ]));
        let a = ThroughReexport::fetch_all_components_with(&sources).await.unwrap();
        assert_eq!(a.port, 8080);
        // The shim re-exports the rest of the API as a facade would.
        let shimmed = shim::Sources::new().with_env(shim::EnvSource::from_map([("CM_NAME", "app")]));
        let b = ThroughShim::fetch_all_components_with(&shimmed).await.unwrap();
        assert_eq!(b.name, "app");
    });
}
