//! Watches, in windows: one request delivers the changes of a key (or a
//! range) from a revision on as etcd sends them, until nothing has come
//! for a window (so that its caller can stop between windows), the caller
//! says stop, or etcd cancels it (a compacted start revision). The caller
//! watches again from the revision each call returns, or keeps the same
//! watch across quiet windows ([`EtcdClient::watch_while`]'s `go_on`),
//! which spares etcd catching a new one up.

use std::time::Duration;

use super::{proto, EtcdClient, EtcdError, WatchEvent};

/// How long a caller of [`EtcdClient::watch_while`] keeps one quiet watch
/// before it makes a new one: a guard against a connection that died
/// without a word, which a quiet watch cannot tell from a quiet key.
pub(crate) const REWATCH_AFTER: Duration = Duration::from_secs(5);

/// Options of a watch beyond its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchOptions {
    /// Watch `[key, range_end)` rather than the key alone (see
    /// [`super::prefix_end`]).
    pub range_end: Option<Vec<u8>>,
    /// Deliver the changes from this revision on (it may be in the past, as
    /// long as it is not compacted); `None` for the changes after the watch
    /// is created.
    pub start_revision: Option<i64>,
    /// Deliver the previous value with each event.
    pub prev_kv: bool,
    /// Return when nothing has arrived for this long.
    pub window: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            range_end: None,
            start_revision: None,
            prev_kv: false,
            window: Duration::from_millis(250),
        }
    }
}

/// How a watch call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchEnd {
    /// Nothing came for a window, or the caller said stop: watch again from
    /// `next` to go on.
    Paused {
        /// The revision the next watch starts from.
        next: i64,
    },
    /// etcd canceled the watch because its start revision was compacted:
    /// read the keys again, then watch from after that read.
    Compacted {
        /// The oldest revision still available.
        compact_revision: i64,
    },
}

impl EtcdClient {
    /// [`EtcdClient::watch_while`] for a single window: the tests' form.
    #[cfg(test)]
    pub(crate) fn watch(
        &self,
        key: &[u8],
        options: &WatchOptions,
        on: impl FnMut(WatchEvent) -> bool,
    ) -> Result<WatchEnd, EtcdError> {
        self.watch_while(key, options, on, || false)
    }

    /// Watches `key` with `options`, handing every message (events, and
    /// progress notifications) to `on` as it arrives; `on` returns whether
    /// to go on. Each time nothing has come for a window, `go_on` says
    /// whether to keep the same watch open for another: a watch made again
    /// from a past revision costs etcd a pass over every change since
    /// (delivering nothing until that pass, up to 100 ms later), where one
    /// kept open delivers each change at once. See the module docs.
    pub(crate) fn watch_while(
        &self,
        key: &[u8],
        options: &WatchOptions,
        mut on: impl FnMut(WatchEvent) -> bool,
        mut go_on: impl FnMut() -> bool,
    ) -> Result<WatchEnd, EtcdError> {
        let request = proto::encode_watch_create(
            key,
            options.range_end.as_deref(),
            options.start_revision,
            options.prev_kv,
        );
        let mut next = options.start_revision.unwrap_or(0);
        let mut compacted = None;
        // Watched again after a stale token only if nothing was delivered.
        let delivered = std::cell::Cell::new(false);
        let mut grpc = self.grpc_client(&self.grpc_watch)?;
        self.with_token(
            |token| {
                grpc.stream(
                    "/etcdserverpb.Watch/Watch",
                    &request,
                    token,
                    self.connect_timeout,
                    self.request_timeout,
                    options.window,
                    |message| {
                        let (created, r) = proto::decode_watch_response(message)?;
                        if r.canceled {
                            if r.compact_revision > 0 {
                                compacted = Some(r.compact_revision);
                                return Ok(false);
                            }
                            return Err(EtcdError::WatchCanceled(r.cancel_reason));
                        }
                        if created && r.events.is_empty() {
                            if options.start_revision.is_none() {
                                next = r.header_revision + 1;
                            }
                            return Ok(true);
                        }
                        for e in &r.events {
                            next = next.max(e.kv.mod_revision + 1);
                        }
                        if r.events.is_empty() {
                            next = next.max(r.header_revision + 1);
                        }
                        delivered.set(true);
                        Ok(on(r))
                    },
                    &mut go_on,
                )
            },
            || !delivered.get(),
        )?;
        Ok(match compacted {
            Some(compact_revision) => WatchEnd::Compacted { compact_revision },
            None => WatchEnd::Paused { next },
        })
    }
}
