use component_model::{Assign, ComponentFrom, ComponentModel, ComponentsAssign, FromComponents};

#[derive(ComponentModel, Clone)]
struct Everything<'a, T: Clone, const N: usize> {
    name: &'a str,
    items: Vec<T>,
    slots: [u8; N],
    #[component(skip)]
    cache: Option<String>,
}

#[derive(Assign, ComponentsAssign, ComponentFrom, FromComponents, Default, Clone)]
struct Split {
    a: u8,
    b: String,
}

fn main() {
    let mut e: Everything<'_, char, 1> = Everything { name: "", items: vec![], slots: [0], cache: None };
    e.assign("x");
    e.name_set("y");
    e.assign([1u8]);
    let _ = e.items_with(vec!['c']);
    let mut s = Split::default();
    s.assign(1u8);
    let _: u8 = (&s).into();
    let _: Split = 3u8.into_split_like();
}

trait IntoSplitLike {
    fn into_split_like(self) -> Split;
}
impl IntoSplitLike for u8 {
    fn into_split_like(self) -> Split {
        #[derive(Clone)]
        struct Both(u8);
        impl From<Both> for u8 {
            fn from(b: Both) -> u8 {
                b.0
            }
        }
        impl From<Both> for String {
            fn from(b: Both) -> String {
                b.0.to_string()
            }
        }
        Both(self).into()
    }
}
