//! A downstream crate with `component_model` as its only dependency. If generated code named
//! `serde`, `tokio`, `component_model_async` or any other crate, this would not compile.

use component_model::{AsyncAssign, ComponentModel};

/// A generic struct using every sync derive.
#[derive(ComponentModel, Debug, PartialEq, Clone)]
pub struct Endpoint<T: Clone>
where
    T: PartialEq,
{
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Extra data.
    pub tags: Vec<T>,
}

/// A config fetched from the environment.
#[derive(AsyncAssign, Debug, Default)]
#[component(env_prefix = "DOWNSTREAM_")]
pub struct EnvConfig {
    /// Listen port.
    #[component(fetch_from = "env", fallback = "8080")]
    pub port: u16,
    /// Not fetched.
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use component_model::{Assign, EnvSource, Sources};
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    /// Drives a future to completion on this thread (no runtime crate available here).
    fn block_on<F: Future>(fut: F) -> F::Output {
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn generic_struct_supports_assign_impute_setters_component_from_and_from_components() {
        let mut e = Endpoint::<char> {
            host: String::new(),
            port: 0,
            tags: vec![],
        };
        e.assign("example.org");
        let e = e.impute(443u16);
        let mut e = e.tags_with(vec!['a']);
        e.port_set(8443u16);
        let host: String = (&e).into();
        let port: u16 = From::from(&e);
        assert_eq!(
            (host.as_str(), port, e.tags.clone()),
            ("example.org", 8443, vec!['a'])
        );

        #[derive(Clone)]
        struct Everything;
        impl From<Everything> for String {
            fn from(_: Everything) -> String {
                "h".into()
            }
        }
        impl From<Everything> for u16 {
            fn from(_: Everything) -> u16 {
                1
            }
        }
        impl From<Everything> for Vec<char> {
            fn from(_: Everything) -> Vec<char> {
                vec!['b']
            }
        }
        let built: Endpoint<char> = Everything.into();
        assert_eq!(
            built,
            Endpoint {
                host: "h".into(),
                port: 1,
                tags: vec!['b']
            }
        );
    }

    #[test]
    fn async_derive_works_through_the_facade() {
        let sources = Sources::new().with_env(EnvSource::from_map([("DOWNSTREAM_PORT", "9000")]));
        let cfg = block_on(EnvConfig::fetch_all_components_with(&sources)).unwrap();
        assert_eq!(cfg.port, 9000);
        let cfg = block_on(EnvConfig::fetch_all_components_with(
            &Sources::new().with_env(EnvSource::from_map::<[(&str, &str); 0], _, _>([])),
        ))
        .unwrap();
        assert_eq!(cfg.port, 8080);
    }
}
