//! A planned change of leader (`numpool cluster switchover`): the leader
//! names the member to hand over to, the members queued before it in the
//! election step aside, the leader stops taking writes, waits until the
//! target has applied everything, and resigns; only the target campaigns
//! in that window, so it is elected at once. Clients see 503 with
//! `Retry-After` meanwhile, and nothing acknowledged is lost (the target
//! catches up with the log in etcd before it leads, as after any election).

use std::time::{Duration, Instant};

use futures::executor::block_on;

use super::etcd::{EtcdClient, LeaderKey, Op};
use super::log::Keys;
use super::node::ClusterConfig;
use super::peer;
use super::status::{NodeStatus, Role};
use super::view::{read, ClusterView, MemberRecord};
use crate::engine::Engine;

/// How long the switchover key lives if its leader does not finish: no
/// member is kept out of an election longer than this.
const ANNOUNCED_FOR_SECS: i64 = 5;
/// How long the members queued before the target have to step aside.
const STEP_ASIDE_WITHIN: Duration = Duration::from_secs(2);
/// How long the target has to apply the last position.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(2);
/// How many times the leader asks etcd to delete its key before it gives
/// the switchover up.
const RESIGN_TRIES: usize = 3;

/// Why a switchover did not happen (nothing changed: the leader leads on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchoverError {
    /// No member of that URL is in the cluster.
    #[error("no member {0} in the cluster (GET /cluster/status lists them)")]
    UnknownMember(String),
    /// The target is the leader itself.
    #[error("{0} leads already")]
    AlreadyLeads(String),
    /// The target is not a standby now.
    #[error("{member} is not a standby now (it is {role})")]
    NotStandby {
        /// The member named.
        member: String,
        /// Its role.
        role: String,
    },
    /// The target is too far behind the leader.
    #[error("{member} has applied the log up to {applied}, {lag} positions behind the leader (at most {max} allowed)")]
    Lagging {
        /// The member named.
        member: String,
        /// The position it has applied.
        applied: u64,
        /// How far behind the leader it is.
        lag: u64,
        /// The most allowed (`--max-lag`).
        max: u64,
    },
    /// No member could take over.
    #[error("no standby can take over now (none is caught up and campaigning)")]
    NoCandidate,
    /// The target does not campaign (or members before it did not step
    /// aside) in time.
    #[error("{0}")]
    NotInLine(String),
    /// The target did not apply the last position in time.
    #[error("{member} did not apply the log up to position {position} within {within:?}")]
    NotCaughtUp {
        /// The member named.
        member: String,
        /// The position it had to reach.
        position: u64,
        /// How long it had.
        within: Duration,
    },
    /// This node does not lead (any more).
    #[error("this node does not lead the cluster")]
    NotLeader,
    /// etcd did not answer.
    #[error("etcd did not answer: {0}")]
    Etcd(String),
}

impl SwitchoverError {
    /// Whether the request itself is at fault (naming a member that cannot
    /// take over), rather than the moment (retry later).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SwitchoverError::UnknownMember(_)
                | SwitchoverError::AlreadyLeads(_)
                | SwitchoverError::NotStandby { .. }
                | SwitchoverError::Lagging { .. }
                | SwitchoverError::NoCandidate
        )
    }
}

/// The member to hand over to: `to` if it can take over, else (with no
/// `to`) the caught-up standby that has applied the most. `applied`: the
/// position a member has applied now (asked of it), else its record's.
pub(super) fn choose(
    view: &ClusterView,
    to: Option<&str>,
    own: &str,
    head: u64,
    max_lag: u64,
    applied: impl Fn(&MemberRecord) -> u64,
) -> Result<String, SwitchoverError> {
    let campaigning = |m: &MemberRecord| view.candidates.iter().any(|(url, _)| *url == m.url);
    let lag = |m: &MemberRecord| head.saturating_sub(applied(m));
    match to.map(|t| t.trim_end_matches('/')) {
        Some(t) if t == own => Err(SwitchoverError::AlreadyLeads(t.to_string())),
        Some(t) => {
            let m = view
                .members
                .iter()
                .find(|m| m.url.trim_end_matches('/') == t)
                .ok_or_else(|| SwitchoverError::UnknownMember(t.to_string()))?;
            if m.role != Role::Standby.name() {
                return Err(SwitchoverError::NotStandby {
                    member: m.url.clone(),
                    role: m.role.clone(),
                });
            }
            if lag(m) > max_lag {
                return Err(SwitchoverError::Lagging {
                    member: m.url.clone(),
                    applied: applied(m),
                    lag: lag(m),
                    max: max_lag,
                });
            }
            Ok(m.url.clone())
        }
        None => view
            .members
            .iter()
            .filter(|m| m.url != own && m.role == Role::Standby.name())
            .filter(|m| lag(m) <= max_lag && campaigning(m))
            .max_by(|a, b| applied(a).cmp(&applied(b)).then_with(|| b.url.cmp(&a.url)))
            .map(|m| m.url.clone())
            .ok_or(SwitchoverError::NoCandidate),
    }
}

/// What the leading node hands to [`hand_over`].
pub(super) struct Leading<'a> {
    pub engine: &'a Engine,
    pub client: &'a EtcdClient,
    pub keys: &'a Keys,
    pub config: &'a ClusterConfig,
    pub leader: &'a LeaderKey,
    pub status: &'a NodeStatus,
}

/// Hands leadership over to `to` (or the best standby). On success this
/// node has resigned (the caller steps down); on failure it leads on, and
/// writes resume by themselves if they were stopped.
pub(super) fn hand_over(l: &Leading<'_>, to: Option<&str>) -> Result<String, SwitchoverError> {
    let writer = l
        .engine
        .journal_writer()
        .ok_or(SwitchoverError::NotLeader)?;
    let view = read(l.client, l.keys).map_err(SwitchoverError::Etcd)?;
    let head = writer.replicated();
    // Member records are a second old at most: ask the members themselves.
    let live = |m: &MemberRecord| applied_by(l.status.peers(), &m.url).unwrap_or(m.applied);
    let target = choose(&view, to, &l.config.advertise, head, l.config.max_lag, live)?;
    tracing::info!(to = %target, position = head, "cluster: switchover: handing leadership over");
    // Announced, fenced on this node's leader key, on a short lease of its
    // own: if this node dies meanwhile, the others campaign again soon.
    let lease = l
        .client
        .lease_grant(ANNOUNCED_FOR_SECS)
        .map_err(|e| SwitchoverError::Etcd(e.to_string()))?;
    let announce = Op::Put {
        key: l.keys.switchover(),
        value: target.clone().into_bytes(),
        lease: Some(lease.id),
    };
    let announced = l
        .client
        .txn(&[l.leader.fence()], &[announce], &[])
        .map_err(|e| SwitchoverError::Etcd(e.to_string()))?;
    let withdraw = || {
        let _ = l.client.lease_revoke(lease.id);
    };
    if !announced.succeeded {
        withdraw();
        return Err(SwitchoverError::NotLeader);
    }
    // The members queued before the target step aside (they watch the key).
    let in_line = wait_for(STEP_ASIDE_WITHIN, || match read(l.client, l.keys) {
        Ok(v) => first_in_line(&v, &l.config.advertise, &target),
        Err(e) => Err(format!("etcd did not answer: {e}")),
    });
    if let Err(why) = in_line {
        withdraw();
        return Err(SwitchoverError::NotInLine(why));
    }
    // No more writes: every change from now on is refused (503), and the
    // last position is final once the writer is done with what it holds.
    writer.fail(&format!("handing leadership over to {target}"));
    block_on(writer.drain());
    let position = writer.replicated();
    let caught_up = wait_for(CATCH_UP_WITHIN, || {
        match applied_by(l.status.peers(), &target) {
            Some(applied) if applied >= position => Ok(()),
            Some(applied) => Err(format!("at {applied}")),
            None => Err("not answering".into()),
        }
    });
    if caught_up.is_err() {
        withdraw();
        return Err(SwitchoverError::NotCaughtUp {
            member: target,
            position,
            within: CATCH_UP_WITHIN,
        });
    }
    l.status.set_role(Role::Standby);
    // Resigning is fenced on this node's leader key, so asking again after
    // an answer that timed out is safe (a second delete matches nothing).
    let mut resigned = l.client.resign(l.leader);
    for _ in 1..RESIGN_TRIES {
        if resigned.is_ok() {
            break;
        }
        resigned = l.client.resign(l.leader);
    }
    if let Err(e) = resigned {
        // Still the leader as far as this node can tell: it leads on (if
        // etcd did delete the key, the watch deposes it as usual).
        l.status.set_role(Role::Leader);
        withdraw();
        return Err(SwitchoverError::Etcd(e.to_string()));
    }
    tracing::info!(to = %target, position, "cluster: switchover: resigned");
    Ok(target)
}

/// `Ok` once `target` is the election's next candidate after `own` (the
/// leader), else why not.
fn first_in_line(view: &ClusterView, own: &str, target: &str) -> Result<(), String> {
    let Some(target_rev) = view
        .candidates
        .iter()
        .find(|(url, _)| url == target)
        .map(|(_, rev)| *rev)
    else {
        return Err(format!("{target} is not campaigning"));
    };
    match view
        .candidates
        .iter()
        .find(|(url, rev)| url != own && url != target && *rev < target_rev)
    {
        Some((url, _)) => Err(format!(
            "{url}, before {target} in the election, did not step aside"
        )),
        None => Ok(()),
    }
}

/// The position `node` says it has applied (its `/readyz`).
fn applied_by(peers: &peer::Peers, node: &str) -> Option<u64> {
    let request = peer::Request {
        method: "GET".into(),
        path_and_query: "/readyz".into(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let (_, _, _, body) = peers
        .exchange(node, &request, Duration::from_millis(500))
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()?
        .get("applied")?
        .as_u64()
}

/// Polls `check` every 10 ms until it holds or `within` passes; the last
/// reason it gave otherwise.
fn wait_for(within: Duration, mut check: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(why) if Instant::now() >= deadline => return Err(why),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(url: &str, role: &str, applied: u64) -> MemberRecord {
        MemberRecord {
            url: url.into(),
            role: role.into(),
            epoch: 0,
            applied,
            snapshot: 0,
            at_ms: 0,
        }
    }

    fn view() -> ClusterView {
        ClusterView {
            leader: Some(("http://a".into(), 10)),
            candidates: vec![
                ("http://a".into(), 10),
                ("http://b".into(), 11),
                ("http://c".into(), 12),
            ],
            members: vec![
                member("http://a", "leader", 100),
                member("http://b", "standby", 90),
                member("http://c", "standby", 99),
                member("http://d", "starting", 0),
            ],
            ..Default::default()
        }
    }

    fn rec(m: &MemberRecord) -> u64 {
        m.applied
    }

    #[test]
    fn a_named_target_must_be_a_caught_up_standby() {
        let v = view();
        assert_eq!(
            choose(&v, Some("http://c/"), "http://a", 100, 5, rec),
            Ok("http://c".into())
        );
        assert_eq!(
            choose(&v, Some("http://x"), "http://a", 100, 5, rec),
            Err(SwitchoverError::UnknownMember("http://x".into()))
        );
        assert_eq!(
            choose(&v, Some("http://a"), "http://a", 100, 5, rec),
            Err(SwitchoverError::AlreadyLeads("http://a".into()))
        );
        assert!(matches!(
            choose(&v, Some("http://d"), "http://a", 100, 5, rec),
            Err(SwitchoverError::NotStandby { .. })
        ));
        let lagging = choose(&v, Some("http://b"), "http://a", 100, 5, rec).unwrap_err();
        assert!(matches!(lagging, SwitchoverError::Lagging { lag: 10, .. }));
        assert!(lagging.is_refusal());
    }

    #[test]
    fn without_a_target_the_most_caught_up_campaigning_standby_is_chosen() {
        let mut v = view();
        assert_eq!(
            choose(&v, None, "http://a", 100, 50, rec),
            Ok("http://c".into())
        );
        // One that does not campaign is passed over.
        v.candidates.retain(|(url, _)| url != "http://c");
        assert_eq!(
            choose(&v, None, "http://a", 100, 50, rec),
            Ok("http://b".into())
        );
        assert_eq!(
            choose(&v, None, "http://a", 100, 5, rec),
            Err(SwitchoverError::NoCandidate)
        );
    }

    #[test]
    fn members_queued_before_the_target_must_step_aside() {
        let mut v = view();
        assert!(first_in_line(&v, "http://a", "http://b").is_ok());
        let blocked = first_in_line(&v, "http://a", "http://c").unwrap_err();
        assert!(blocked.contains("http://b"), "{blocked}");
        v.candidates.retain(|(url, _)| url != "http://b");
        assert!(first_in_line(&v, "http://a", "http://c").is_ok());
        assert!(first_in_line(&v, "http://a", "http://b").is_err());
    }
}
