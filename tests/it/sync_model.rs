//! The sync component model: `Assign`, `ComponentsAssign`, `ComponentFrom`,
//! `FromComponents` and `ComponentModel`'s `<field>_set` / `<field>_with`.

use component_model::{Assign, AssignWithType, ComponentModel};

#[derive(ComponentModel, Default, Debug, PartialEq, Clone)]
struct Person {
    age: i32,
    name: String,
}

#[test]
fn assign_sets_the_field_of_the_components_type() {
    let mut p = Person::default();
    p.assign(13);
    p.assign("John");
    assert_eq!(
        p,
        Person {
            age: 13,
            name: "John".into()
        }
    );
}

#[test]
fn impute_chains() {
    let p = Person::default().impute(40).impute("Ann");
    assert_eq!(
        p,
        Person {
            age: 40,
            name: "Ann".into()
        }
    );
}

#[test]
fn assign_with_type_names_the_target() {
    let mut p = Person::default();
    p.assign_with_type::<i32, _>(7i8);
    assert_eq!(p.age, 7);
}

#[test]
fn setters_and_withers_exist_for_every_field() {
    let mut p = Person::default();
    p.age_set(3);
    p.name_set("x");
    let q = p.clone().age_with(4).name_with(String::from("y"));
    assert_eq!(
        p,
        Person {
            age: 3,
            name: "x".into()
        }
    );
    assert_eq!(
        q,
        Person {
            age: 4,
            name: "y".into()
        }
    );
}

#[test]
fn component_from_reads_a_field_by_type() {
    let p = Person {
        age: 5,
        name: "n".into(),
    };
    let age: i32 = (&p).into();
    let name: String = From::from(&p);
    assert_eq!((age, name.as_str()), (5, "n"));
}

#[test]
fn from_components_builds_from_one_value_convertible_into_every_field() {
    #[derive(Clone)]
    struct Both;
    impl From<Both> for i32 {
        fn from(_: Both) -> i32 {
            9
        }
    }
    impl From<Both> for String {
        fn from(_: Both) -> String {
            "nine".into()
        }
    }
    let p: Person = Both.into();
    assert_eq!(
        p,
        Person {
            age: 9,
            name: "nine".into()
        }
    );
}

#[test]
fn components_assign_assigns_every_field_from_one_value() {
    #[derive(Clone)]
    struct Src;
    impl From<Src> for i32 {
        fn from(_: Src) -> i32 {
            1
        }
    }
    impl From<Src> for String {
        fn from(_: Src) -> String {
            "one".into()
        }
    }
    let mut p = Person::default();
    p.person_assign(Src);
    assert_eq!(
        p,
        Person {
            age: 1,
            name: "one".into()
        }
    );
}

// Generic struct with bounds, a const parameter and a where clause.
#[derive(ComponentModel, Debug, PartialEq)]
struct Server<T: Clone, const N: usize>
where
    T: std::fmt::Debug,
{
    host: String,
    port: u16,
    meta: Vec<T>,
    slots: [u8; N],
}

#[test]
fn generic_structs_with_bounds_and_where_clauses_work() {
    let s: Server<char, 2> = Server {
        host: String::new(),
        port: 0,
        meta: vec![],
        slots: [0; 2],
    };
    let mut s = s.impute("localhost");
    s.assign(8080u16);
    s.assign(vec!['x']);
    s.meta_set(vec!['y']);
    let s = s.slots_with([1, 2]);
    assert_eq!(
        (s.host.as_str(), s.port, s.meta.as_slice(), s.slots),
        ("localhost", 8080, &['y'][..], [1, 2])
    );
    let host: String = (&s).into();
    let meta: Vec<char> = (&s).into();
    assert_eq!((host.as_str(), meta), ("localhost", vec!['y']));
}

#[derive(ComponentModel, Default, Debug)]
struct Bare<T> {
    value: T,
    label: String,
}

#[test]
fn a_bare_type_parameter_field_could_be_any_type_so_only_setters_are_generated() {
    // `Assign<T, _>` and `Assign<String, _>` would overlap for `T = String`.
    let b = Bare::<u8>::default().value_with(3u8).label_with("x");
    assert_eq!((b.value, b.label.as_str()), (3, "x"));
}

#[derive(ComponentModel, Debug, PartialEq, Default)]
struct Borrowed<'a> {
    name: &'a str,
    count: usize,
}

#[test]
fn lifetimes_work() {
    let text = String::from("borrowed");
    let mut b = Borrowed::default();
    b.assign(text.as_str());
    b.assign(2usize);
    let name: &str = (&b).into();
    assert_eq!((name, b.count), ("borrowed", 2));
}

#[derive(ComponentModel, Default, Debug, PartialEq)]
struct TwoStrings {
    first: String,
    second: String,
    port: u16,
}

#[test]
fn two_fields_of_one_type_are_both_reachable_through_setters() {
    // No `Assign<String, _>` is generated: it would have to pick one field.
    let mut t = TwoStrings::default();
    t.first_set("a");
    t.second_set("b");
    t.assign(1u16); // the unambiguous type still has its impl
    assert_eq!(
        t,
        TwoStrings {
            first: "a".into(),
            second: "b".into(),
            port: 1
        }
    );
}

#[derive(ComponentModel, Default, Debug)]
struct Keywords {
    r#type: String,
    r#match: u8,
}

#[test]
fn raw_identifiers_get_plain_method_names() {
    let k = Keywords::default().type_with("kind").match_with(3u8);
    assert_eq!((k.r#type.as_str(), k.r#match), ("kind", 3));
}

#[test]
fn structs_inside_functions_work() {
    #[derive(ComponentModel, Default)]
    struct Local {
        v: u64,
        label: String,
    }
    let l = Local::default().impute(5u64).label_with("x");
    assert_eq!((l.v, l.label.as_str()), (5, "x"));
}

#[derive(ComponentModel, Default, Debug, PartialEq)]
struct WithSkip {
    kept: u32,
    #[component(skip)]
    cache: Vec<u8>,
}

#[test]
fn skipped_fields_get_no_impls_and_default_in_from_components() {
    let w: WithSkip = 7u32.into();
    assert_eq!(
        w,
        WithSkip {
            kept: 7,
            cache: vec![]
        }
    );
}

#[derive(component_model::Assign, component_model::ComponentFrom, Default)]
struct Pair(u8, String);

#[test]
fn tuple_structs_support_assign_and_component_from() {
    let mut p = Pair::default();
    p.assign(4u8);
    p.assign("four");
    let n: u8 = (&p).into();
    assert_eq!((n, p.1.as_str()), (4, "four"));
}

#[derive(ComponentModel, component_model::AsyncAssign, Default, Debug)]
struct BothDerives {
    #[component(fetch_from = "env", fallback = "9")]
    workers: u8,
    name: String,
}

#[tokio::test]
async fn sync_and_async_derives_share_one_struct() {
    let b = BothDerives::default().impute("svc");
    assert_eq!(b.name, "svc");
    let sources = component_model::Sources::new()
        .with_env(component_model::EnvSource::from_map([("WORKERS", "3")]));
    let fetched = BothDerives::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(fetched.workers, 3);
}
