//! One read per distinct request, whatever the backend.

use super::raw::RawValue;
use super::request::FetchRequest;
use crate::error::SourceError;

/// Answers `requests` by asking `fetch` once per distinct request and giving each answer
/// to every request equal to it (`FetchRequest`'s `Eq`: the same wire parameters), in the
/// order of `requests`. Two fields reading one key cost one read, whatever the backend.
///
/// `fetch` gets the distinct requests and returns one answer per request, in order; an
/// answer it leaves out becomes an `unavailable` error saying so, never a panic.
///
/// ```
/// use component_model_async::source_support::coalesce;
/// use component_model_async::{FetchRequest, RawValue};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let a = FetchRequest::for_key("kv", "a");
/// let also_a = FetchRequest::for_key("kv", "a").in_field("App", "other");
/// let b = FetchRequest::for_key("kv", "b");
/// let answers = coalesce(&[&a, &also_a, &b], |unique| async move {
///     assert_eq!(unique.len(), 2); // `a` once
///     unique.iter().map(|r| Ok(RawValue::from(r.key().unwrap()))).collect()
/// })
/// .await;
/// assert_eq!(answers[1].as_ref().ok(), Some(&RawValue::from("a")));
/// # });
/// ```
pub async fn coalesce<'r, F, Fut>(
    requests: &[&'r FetchRequest],
    fetch: F,
) -> Vec<Result<RawValue, SourceError>>
where
    F: FnOnce(Vec<&'r FetchRequest>) -> Fut,
    Fut: std::future::Future<Output = Vec<Result<RawValue, SourceError>>>,
{
    // foldhash: a request hashes a dozen parameters, and SipHash showed in profiles.
    let mut index: std::collections::HashMap<&FetchRequest, usize, foldhash::fast::RandomState> =
        std::collections::HashMap::with_capacity_and_hasher(requests.len(), Default::default());
    let mut unique: Vec<&'r FetchRequest> = Vec::with_capacity(requests.len());
    let slots: Vec<usize> = requests
        .iter()
        .map(|r| {
            *index.entry(*r).or_insert_with(|| {
                unique.push(*r);
                unique.len() - 1
            })
        })
        .collect();
    let asked = unique.len();
    let mut answers: Vec<Option<Result<RawValue, SourceError>>> =
        fetch(unique).await.into_iter().map(Some).collect();
    answers.resize_with(asked, || None);
    // The last request of each slot takes the answer; earlier ones get a clone.
    let mut remaining = vec![0usize; asked];
    for &s in &slots {
        remaining[s] += 1;
    }
    slots
        .into_iter()
        .map(|s| {
            remaining[s] -= 1;
            let answer = if remaining[s] == 0 {
                answers[s].take()
            } else {
                answers[s].clone()
            };
            answer.unwrap_or_else(|| {
                Err(SourceError::new(crate::ErrorKind::Unavailable)
                    .with_message("the source returned fewer answers than requests"))
            })
        })
        .collect()
}
