//! Regressions found reviewing the engine as a pipeline of stages (issue 30): what `Live`
//! reuses from one fetch to the next, checked fields, and `fallback_to` of a fetcher.

mod live_values {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use component_model::{
        AsyncAssign, Change, Changes, ConfigUpdate, FetchRequest, Live, RawValue, Source,
        SourceError, Sources, async_trait,
    };
    use futures::StreamExt;

    #[derive(Clone, Default)]
    struct Store {
        port: Arc<Mutex<String>>,
        tx: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Change>>>>,
    }

    #[async_trait]
    impl Source for Store {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Ok(RawValue::Text(self.port.lock().unwrap().clone()))
        }
        fn watch(&self, _requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            *self.tx.lock().unwrap() = Some(tx);
            Ok(tokio_stream_from(rx))
        }
    }

    fn tokio_stream_from(mut rx: tokio::sync::mpsc::UnboundedReceiver<Change>) -> Changes {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok))).boxed()
    }

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct App {
        #[component(fetch_from = "store", key = "port", cache_for = "1h", watch)]
        port: u16,
    }

    #[tokio::test]
    async fn a_value_applied_by_live_reaches_the_cache() {
        let store = Store::default();
        *store.port.lock().unwrap() = "8080".into();
        let sources = Sources::new().register("store", store.clone());
        let live = Live::<App>::builder(&sources)
            .quiescence(Duration::from_millis(10), Duration::from_millis(50))
            .start()
            .await
            .unwrap();
        let mut updates = live.changes();
        tokio::time::sleep(Duration::from_millis(200)).await; // the first watch's All settles
        *store.port.lock().unwrap() = "9090".into();
        let tx = store.tx.lock().unwrap().clone().unwrap();
        tx.send(Change::Value {
            index: 0,
            value: RawValue::from("9090"),
            revision: None,
        })
        .unwrap();
        let u = tokio::time::timeout(Duration::from_secs(2), updates.next())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(u, ConfigUpdate::Applied { .. }), "{u:?}");
        assert_eq!(live.get().port, 9090);
        let plain = App::fetch_all_components_with(&sources).await.unwrap();
        assert_eq!(plain.port, 9090, "a plain fetch after the live update");
    }

    use component_model::component_model_async::__private::FieldSpec;
    use component_model::component_model_async::__private::{Nested, Outcomes, Plan};

    static PORT: FieldSpec = FieldSpec::new("Checked", "port", "u16", "store")
        .key("port")
        .watch(true);

    #[derive(Debug)]
    struct Checked {
        port: u16,
    }

    fn any_port(
        _: &u16,
        _: bool,
    ) -> futures::future::BoxFuture<'_, Result<(), component_model::Violations>> {
        Box::pin(async { Ok(()) })
    }

    impl Nested for Checked {
        fn plan(plan: &mut Plan<'_>) {
            let port = plan.add::<u16>(&PORT, false);
            plan.rule_async(port, "with_async any_port", None, any_port); // what `validate(with_async = any_port)` plans
        }
        fn take(out: &mut Outcomes<'_>, available: bool) -> Option<Self> {
            Some(Checked {
                port: out.field::<u16>(available, None)?,
            })
        }
    }

    #[tokio::test]
    async fn a_change_of_a_checked_field_is_applied() {
        let store = Store::default();
        *store.port.lock().unwrap() = "8080".into();
        let sources = Sources::new().register("store", store.clone());
        let live = Live::<Checked>::builder(&sources)
            .quiescence(Duration::from_millis(10), Duration::from_millis(50))
            .start()
            .await
            .unwrap();
        assert_eq!(live.get().port, 8080);
        let mut updates = live.changes();
        tokio::time::sleep(Duration::from_millis(200)).await;
        *store.port.lock().unwrap() = "9090".into();
        let tx = store.tx.lock().unwrap().clone().unwrap();
        tx.send(Change::Changed(vec![0])).unwrap();
        let u = tokio::time::timeout(Duration::from_secs(1), updates.next()).await;
        assert!(matches!(u, Ok(Some(ConfigUpdate::Applied { .. }))), "{u:?}");
        assert_eq!(live.get().port, 9090);
    }
}

mod fallback_values {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use component_model::{
        AsyncAssign, Change, Changes, ErrorKind, FetchRequest, Live, RawValue, Source, SourceError,
        Sources, async_trait,
    };
    use futures::StreamExt;

    #[derive(Clone, Default)]
    struct Kv {
        values: Arc<Mutex<HashMap<String, Option<String>>>>,
        tx: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Change>>>>,
    }

    #[async_trait]
    impl Source for Kv {
        async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
            match self
                .values
                .lock()
                .unwrap()
                .get(r.key().unwrap_or_default())
                .cloned()
                .flatten()
            {
                Some(v) => Ok(RawValue::Text(v)),
                None => Err(SourceError::new(ErrorKind::Unavailable)),
            }
        }
        fn watch(&self, _requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
            *self.tx.lock().unwrap() = Some(tx);
            Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok))).boxed())
        }
    }

    struct Backup;
    #[async_trait]
    impl Source for Backup {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Ok(RawValue::from("2"))
        }
    }

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct App {
        #[component(fetch_from = "kv", key = "x", fallback_to = "backup")]
        x: u16,
        #[component(fetch_from = "kv", key = "y")]
        y: u16,
    }

    #[tokio::test]
    async fn a_field_that_fell_back_is_asked_again_on_the_next_update() {
        let kv = Kv::default();
        kv.values.lock().unwrap().insert("x".into(), None); // x's read fails
        kv.values
            .lock()
            .unwrap()
            .insert("y".into(), Some("10".into()));
        let sources = Sources::new()
            .register("kv", kv.clone())
            .register("backup", Backup);
        let live = Live::<App>::builder(&sources)
            .quiescence(Duration::from_millis(10), Duration::from_millis(20))
            .start()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await; // the first watch's All settles
        assert_eq!(live.get().x, 2, "from fallback_to");
        kv.values
            .lock()
            .unwrap()
            .insert("x".into(), Some("1".into())); // x readable again
        kv.values
            .lock()
            .unwrap()
            .insert("y".into(), Some("11".into()));
        let tx = kv.tx.lock().unwrap().clone().unwrap();
        tx.send(Change::Changed(vec![1])).unwrap(); // y changed
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(live.get().y, 11);
        assert_eq!(live.get().x, 1, "x's own source answers again");
    }
}

mod typed_fallback {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use component_model::{
        AsyncAssign, ComponentFetcher, FetchRequest, Live, RawValue, Source, SourceError, Sources,
        async_trait,
    };

    struct Fx(Arc<AtomicBool>);
    #[async_trait]
    impl ComponentFetcher<u16> for Fx {
        type Error = std::io::Error;
        async fn fetch_component(&self) -> Result<u16, Self::Error> {
            match self.0.load(Ordering::SeqCst) {
                true => Err(std::io::Error::other("down")),
                false => Ok(7),
            }
        }
    }

    struct Store;
    #[async_trait]
    impl Source for Store {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Ok(RawValue::from("8080"))
        }
    }

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct App {
        #[component(
            fetch_from = "fx",
            fallback_to = "store",
            key = "port",
            watch_interval = "50ms"
        )]
        port: u16,
    }

    #[tokio::test]
    async fn a_polled_typed_field_that_fell_back_is_fetched_again() {
        let down = Arc::new(AtomicBool::new(true));
        let sources = Sources::new()
            .register_fetcher::<u16, _>("fx", Fx(down.clone()))
            .register("store", Store);
        let live = Live::<App>::builder(&sources)
            .quiescence(Duration::from_millis(10), Duration::from_millis(20))
            .start()
            .await
            .unwrap();
        assert_eq!(live.get().port, 8080, "from fallback_to");
        down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await; // ten polls
        assert_eq!(live.get().port, 7, "the fetcher is back");
    }
}

mod fetcher_fallback_to {
    use component_model::{
        AsyncAssign, ComponentFetcher, FetchRequest, RawValue, Source, SourceError, Sources,
        async_trait,
    };

    struct Down;
    #[async_trait]
    impl ComponentFetcher<u16> for Down {
        type Error = std::io::Error;
        async fn fetch_component(&self) -> Result<u16, Self::Error> {
            Err(std::io::Error::other("down"))
        }
    }

    struct Store;
    #[async_trait]
    impl Source for Store {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Ok(RawValue::from("8080"))
        }
    }

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(fetcher = Down, fallback_to = "store")]
        port: u16,
    }

    #[tokio::test]
    async fn fetcher_with_fallback_to_a_source() {
        let sources = Sources::new().register("store", Store);
        let r = App::fetch_all_components_with(&sources).await;
        assert_eq!(
            r.map(|a| a.port)
                .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Ok(8080)
        );
    }
}
