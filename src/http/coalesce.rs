//! Coalescing sends: the selections one HTTP worker thread receives in one
//! turn of its event loop travel to each profile's actor as one batch.
//!
//! A round trip to an actor on another thread costs a wake-up on each side;
//! under load, many requests for the same profile arrive together, so one
//! message per profile per turn pays that cost once for all of them. With a
//! single request in flight the batch is just that request, so nothing
//! waits for company: the flush runs as soon as the worker has polled the
//! other requests that were ready.

use std::cell::RefCell;
use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::engine::{Engine, EngineError};
use crate::number::PhoneNumber;
use crate::registry::ProfileId;
use crate::select::Selection;

type Reply = oneshot::Sender<Result<Selection, EngineError>>;

#[derive(Default)]
struct Pending {
    flush_scheduled: bool,
    by_profile: HashMap<ProfileId, Vec<(PhoneNumber, Reply)>>,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Selects the sender for one message, batched with the other sends of this
/// worker's current turn. Must run on an actix (LocalSet) worker thread.
pub async fn send(
    engine: &Engine,
    profile: ProfileId,
    to: PhoneNumber,
) -> Result<Selection, EngineError> {
    let (reply, answer) = oneshot::channel();
    let first = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.by_profile.entry(profile).or_default().push((to, reply));
        !std::mem::replace(&mut p.flush_scheduled, true)
    });
    if first {
        let engine = engine.clone();
        actix_rt::spawn(async move {
            // Let the requests already ready on this worker join the batch.
            tokio::task::yield_now().await;
            let batch = PENDING.with(|p| {
                let mut p = p.borrow_mut();
                p.flush_scheduled = false;
                std::mem::take(&mut p.by_profile)
            });
            let flushes = batch.into_iter().map(|(profile, items)| {
                let engine = &engine;
                async move {
                    let (recipients, replies): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                    match engine.send_to_many(profile, recipients).await {
                        Ok(results) => {
                            for (reply, r) in replies.into_iter().zip(results) {
                                let _ = reply.send(r.map_err(EngineError::from));
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            });
            futures::future::join_all(flushes).await;
        });
    }
    answer.await.unwrap_or(Err(EngineError::Internal))
}
