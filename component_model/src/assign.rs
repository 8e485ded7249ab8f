//! The sync component traits: [`Assign`], [`AssignWithType`] and [`OptionExt`].

/// Assigns a component of type `T` from anything convertible into it.
///
/// `#[derive(Assign)]` (or `ComponentModel`) implements it for each field type only one
/// field has:
///
/// ```
/// use component_model::Assign;
///
/// #[derive(Default, Assign)]
/// struct Server {
///     host: String,
///     port: u16,
/// }
///
/// let mut s = Server::default();
/// s.assign("localhost");
/// s.assign(8080u16);
/// let s = s.impute(9090u16);
/// assert_eq!((s.host.as_str(), s.port), ("localhost", 9090));
/// ```
pub trait Assign<T, IntoT> {
    /// Sets the component of type `T`.
    fn assign(&mut self, component: IntoT);

    /// Sets the component of type `T` and returns `self`, for chaining.
    #[must_use]
    #[inline(always)]
    fn impute(mut self, component: IntoT) -> Self
    where
        Self: Sized,
    {
        self.assign(component);
        self
    }
}

/// Assigns a component naming its type explicitly, when inference can't tell.
///
/// ```
/// use component_model::{Assign, AssignWithType};
///
/// #[derive(Default, Assign)]
/// struct Limits {
///     max: u64,
///     name: String,
/// }
///
/// let mut l = Limits::default();
/// l.assign_with_type::<u64, _>(10u8); // u8 converts into u64; name the target type
/// assert_eq!(l.max, 10);
/// ```
pub trait AssignWithType {
    /// Assigns `component` to the component of type `T`.
    fn assign_with_type<T, IntoT>(&mut self, component: IntoT)
    where
        IntoT: Into<T>,
        Self: Assign<T, IntoT>;
}

impl<S> AssignWithType for S {
    #[inline(always)]
    fn assign_with_type<T, IntoT>(&mut self, component: IntoT)
    where
        IntoT: Into<T>,
        Self: Assign<T, IntoT>,
    {
        Assign::<T, IntoT>::assign(self, component);
    }
}

/// Assigning into an `Option` that may not hold a value yet.
///
/// `T` must know how to merge a whole value of itself into an existing one
/// (`Assign<T, T>`, usually written by hand):
///
/// ```
/// use component_model::{Assign, OptionExt};
///
/// #[derive(Default, Debug, PartialEq)]
/// struct Opts {
///     level: u8,
///     name: Option<String>,
/// }
///
/// impl Assign<Opts, Opts> for Opts {
///     fn assign(&mut self, other: Opts) {
///         self.level = other.level;
///         if other.name.is_some() {
///             self.name = other.name;
///         }
///     }
/// }
///
/// let mut o: Option<Opts> = None;
/// o.option_assign(Opts { level: 1, name: Some("a".into()) });
/// o.option_assign(Opts { level: 2, name: None }); // merged into the existing value
/// assert_eq!(o, Some(Opts { level: 2, name: Some("a".into()) }));
/// ```
pub trait OptionExt<T>: sealed::Sealed
where
    T: Sized + Assign<T, T>,
{
    /// Sets the value if `None`, else assigns `src` into the existing value.
    fn option_assign(&mut self, src: T);
}

impl<T> OptionExt<T> for Option<T>
where
    T: Sized + Assign<T, T>,
{
    #[inline(always)]
    fn option_assign(&mut self, src: T) {
        match self {
            Some(existing) => existing.assign(src),
            None => *self = Some(src),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for Option<T> {}
}
