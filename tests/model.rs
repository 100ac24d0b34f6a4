//! Property test: random sequences of operations run against the engine
//! (through its public API, the caller running each request, time from a
//! manual clock) and against a small reference model written here with
//! `BTreeMap`s, linear scans and no timing wheel. Every selection (with its
//! queue wait), every error, every visible mapping and every sender's
//! queue and daily counts must agree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{
    CapacityUpdate, DeliveryOutcome, Engine, EngineConfig, Error, HealthConfig, MappingOutcome,
    NewProfile, NoSender, Outbound, PhoneNumber, PinError, PoolSettings, ProfileId, ProfileUpdate,
    Reason, SenderKind, SettingsPatch, SettingsUpdate, Timestamp,
};
use proptest::prelude::*;

fn region_of(npa: u16) -> Option<&'static str> {
    Engine::npa_region(npa)
}

const NUMBERS: [&str; 10] = [
    "+13125550001",
    "+13125550002",
    "+14155550003",
    "+14155550004",
    "+17735550005", // Illinois, like 312
    "+18005550006",
    "+18885550007",
    "12345",
    "+447700900008",
    "+12125550009",
];
const RECIPIENTS: [&str; 8] = [
    "+13125559001",
    "+14155559002",
    "+17735559003",
    "+12125559004",
    "+12065559005",
    "+18005559006",
    "+447700909007",
    "+13125559008",
];
const PROFILES: usize = 3;
const DEFAULT_TTL: u32 = 60;

fn health_config() -> HealthConfig {
    HealthConfig {
        window_secs: 100,
        buckets: 10,
        min_samples: 3,
        ..HealthConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        profile: usize,
        to: usize,
        parts: u32,
        /// An explicit sender (a number index), or the pool.
        from: Option<usize>,
    },
    Limits {
        profile: usize,
        update: CapacityUpdate,
    },
    Rate {
        number: usize,
        rate: Option<f64>,
    },
    Assign {
        number: usize,
        profile: usize,
    },
    Unassign {
        number: usize,
    },
    Patch {
        profile: usize,
        update: SettingsUpdate,
    },
    Report {
        number: usize,
        delivered: bool,
        spam: bool,
        count: u32,
    },
    Advance {
        secs: u32,
    },
    Expire,
    Pin {
        profile: usize,
        to: usize,
        from: usize,
    },
    Unmap {
        profile: usize,
        to: usize,
    },
    Recreate {
        profile: usize,
    },
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(2.0),
        Just(5.0),
        Just(0.5),
        Just(-1.0)
    ]
}

fn patch() -> impl Strategy<Value = SettingsUpdate> {
    let fields = (
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(weight()),
        proptest::option::of(weight()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![Just(0u64), Just(30), Just(90)]),
        proptest::option::of(any::<bool>()),
    );
    prop_oneof![
        1 => Just(SettingsUpdate::Disable),
        8 => fields.prop_map(|(s, g, l, t, k, ttl, f)| SettingsUpdate::Merge(SettingsPatch {
            sticky_sender: s,
            geomatch: g,
            long_code_weight: l,
            toll_free_weight: t,
            skip_unhealthy: k,
            sticky_ttl_secs: ttl,
            geomatch_region_fallback: f,
        })),
    ]
}

fn limits() -> impl Strategy<Value = CapacityUpdate> {
    let count = || proptest::option::of(proptest::option::of(prop_oneof![Just(0u32), 1..6u32]));
    (
        proptest::option::of(prop_oneof![
            Just(1.0),
            Just(2.5),
            Just(5.0),
            Just(14_400.0),
            Just(0.0)
        ]),
        count(),
        count(),
    )
        .prop_map(|(q, d, r)| CapacityUpdate {
            max_queue_seconds: q,
            daily_message_limit: d,
            new_recipients_per_sender_per_day: r,
            daily_reset_time_zone: None,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PROFILES;
    let num = 0..NUMBERS.len();
    let to = 0..RECIPIENTS.len();
    prop_oneof![
        12 => (p.clone(), to.clone(), 1..4u32, proptest::option::weighted(0.2, num.clone()))
            .prop_map(|(profile, to, parts, from)| Op::Send { profile, to, parts, from }),
        2 => (p.clone(), limits()).prop_map(|(profile, update)| Op::Limits { profile, update }),
        1 => (num.clone(), proptest::option::of(prop_oneof![Just(0.5), Just(2.0), Just(3.0), Just(-1.0)]))
            .prop_map(|(number, rate)| Op::Rate { number, rate }),
        4 => (num.clone(), p.clone()).prop_map(|(number, profile)| Op::Assign { number, profile }),
        1 => num.clone().prop_map(|number| Op::Unassign { number }),
        3 => (p.clone(), patch()).prop_map(|(profile, update)| Op::Patch { profile, update }),
        2 => (num.clone(), any::<bool>(), any::<bool>(), 1..8u32)
            .prop_map(|(number, delivered, spam, count)| Op::Report { number, delivered, spam, count }),
        3 => (0..80u32).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Expire),
        1 => (p.clone(), to.clone(), num).prop_map(|(profile, to, from)| Op::Pin { profile, to, from }),
        1 => (p.clone(), to).prop_map(|(profile, to)| Op::Unmap { profile, to }),
        1 => p.prop_map(|profile| Op::Recreate { profile }),
    ]
}

// ---- The reference model ---------------------------------------------------

#[derive(Debug, Clone)]
struct MSender {
    number: PhoneNumber,
    /// Outcomes as (time, outcome), since the number joined this profile's
    /// chain of owners (unassigning forgets them).
    outcomes: Vec<(u32, DeliveryOutcome)>,
    /// When its queue ends (ns), and its counts on `day`.
    free_ns: u64,
    day: u64,
    messages: u32,
    new_recipients: u32,
}

impl MSender {
    fn new(number: PhoneNumber) -> Self {
        MSender {
            number,
            outcomes: vec![],
            free_ns: 0,
            day: 0,
            messages: 0,
            new_recipients: 0,
        }
    }

    fn wait(&self, now: u32) -> u64 {
        self.free_ns.saturating_sub(ns(now))
    }

    fn counts(&self, now: u32) -> (u32, u32) {
        if self.day == day(now) {
            (self.messages, self.new_recipients)
        } else {
            (0, 0)
        }
    }
}

fn ns(secs: u32) -> u64 {
    u64::from(secs) * 1_000_000_000
}

/// The day (UTC, the profiles' zone) of `secs`.
fn day(secs: u32) -> u64 {
    u64::from(secs) / 86_400
}

/// The capacity settings of a model profile.
#[derive(Debug, Clone, Copy)]
struct MLimits {
    max_queue_secs: f64,
    daily: Option<u32>,
    new_per_sender: Option<u32>,
}

impl Default for MLimits {
    fn default() -> Self {
        MLimits {
            max_queue_secs: 14_400.0,
            daily: None,
            new_per_sender: None,
        }
    }
}

/// Why the model refuses a send (the engine's errors, compared as such).
fn queue_full(sender: PhoneNumber, wait: u64) -> Error {
    Error::QueueFull {
        sender,
        wait: Duration::from_nanos(wait),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct MMapping {
    from: PhoneNumber,
    created: u32,
    last_used: u32,
    pinned: bool,
}

#[derive(Debug, Default)]
struct MProfile {
    settings: Option<PoolSettings>,
    /// By joining sequence number.
    senders: BTreeMap<u64, MSender>,
    next_seq: u64,
    /// Sequence number of the last pick per rotation.
    last: BTreeMap<String, u64>,
    credit: [f64; 2],
    mappings: BTreeMap<PhoneNumber, MMapping>,
    limits: MLimits,
    /// The profile's sends on `day`.
    day: u64,
    sent: u32,
}

#[derive(Debug, Default)]
struct Model {
    profiles: BTreeMap<usize, MProfile>,
    owners: BTreeMap<PhoneNumber, usize>,
    /// Numbers the engine has seen, with their own rates.
    rates: BTreeMap<PhoneNumber, Option<f64>>,
}

/// A sender's rate: its own, else its kind's (long code 1, toll-free 3,
/// short code 100).
fn rate_of(model_rate: Option<f64>, n: PhoneNumber) -> f64 {
    model_rate.unwrap_or(match n.kind() {
        SenderKind::LongCode => 1.0,
        SenderKind::TollFree => 3.0,
        SenderKind::ShortCode => 100.0,
    })
}

/// Nanoseconds `parts` take at `rate` per second: each part's time,
/// rounded up to the nanosecond.
fn busy(parts: u32, rate: f64) -> u64 {
    u64::from(parts) * (1e9 / rate).ceil() as u64
}

fn kind_of(n: PhoneNumber) -> Option<usize> {
    match n.kind() {
        SenderKind::LongCode => Some(0),
        SenderKind::TollFree => Some(1),
        SenderKind::ShortCode => None,
    }
}

fn unhealthy(s: &MSender, now: u32) -> bool {
    let cfg = health_config();
    let width = cfg.bucket_secs();
    let (mut total, mut delivered, mut spam) = (0u32, 0u32, 0u32);
    for (t, o) in &s.outcomes {
        if now / width - t / width < u32::from(cfg.buckets) {
            total += 1;
            delivered += u32::from(o.delivered);
            spam += u32::from(o.spam);
        }
    }
    total >= cfg.min_samples
        && (f64::from(delivered) / f64::from(total) < cfg.min_success_ratio
            || f64::from(spam) / f64::from(total) > cfg.max_spam_ratio)
}

impl MProfile {
    fn ttl(&self) -> u32 {
        self.settings
            .as_ref()
            .and_then(|s| s.sticky_ttl_secs)
            .map_or(DEFAULT_TTL, |t| t as u32)
    }

    fn seq_of(&self, n: PhoneNumber) -> Option<u64> {
        self.senders
            .iter()
            .find(|(_, s)| s.number == n)
            .map(|(q, _)| *q)
    }

    fn live_mapping(&self, to: PhoneNumber, now: u32) -> Option<&MMapping> {
        let m = self.mappings.get(&to)?;
        (m.pinned || now < m.last_used + self.ttl()).then_some(m)
    }

    fn over_cap(&self, wait: u64) -> bool {
        wait as f64 > self.limits.max_queue_secs * 1e9
    }

    /// Refuses a send once the profile sent its daily limit today.
    fn daily_limit(&mut self, now: u32) -> Result<(), Error> {
        if self.day != day(now) {
            self.day = day(now);
            self.sent = 0;
        }
        match self.limits.daily {
            Some(limit) if self.sent >= limit => Err(Error::DailyLimit),
            _ => Ok(()),
        }
    }

    /// Load-aware: among `candidates` (in joining order), an idle one in
    /// round-robin order after the last pick of `rotation`; if none is
    /// idle, the least wait, the first to join on a tie.
    fn best(&self, rotation: &str, candidates: &[u64], now: u32) -> Option<u64> {
        let last = self.last.get(rotation).copied().unwrap_or(0);
        let (after, before): (Vec<u64>, Vec<u64>) = candidates.iter().partition(|q| **q > last);
        let wait = |q: &u64| self.senders[q].wait(now);
        after
            .iter()
            .chain(&before)
            .find(|q| wait(q) == 0)
            .or_else(|| candidates.iter().min_by_key(|q| (wait(q), **q)))
            .copied()
    }

    /// Queues a message of `parts` on sender `seq`; returns its wait.
    fn charge(&mut self, seq: u64, parts: u32, rate: f64, new: bool, now: u32) -> u64 {
        let s = self.senders.get_mut(&seq).unwrap();
        let send_at = s.free_ns.max(ns(now));
        s.free_ns = send_at + busy(parts, rate);
        if s.day != day(now) {
            (s.day, s.messages, s.new_recipients) = (day(now), 0, 0);
        }
        s.messages += 1;
        s.new_recipients += u32::from(new);
        self.sent += 1;
        send_at - ns(now)
    }

    fn send_from(
        &mut self,
        from: PhoneNumber,
        parts: u32,
        rate: f64,
        now: u32,
    ) -> Result<(PhoneNumber, Reason, MappingOutcome, u64), Error> {
        self.daily_limit(now)?;
        let seq = self.seq_of(from).ok_or(Error::NotInPool)?;
        let wait = self.senders[&seq].wait(now);
        if self.over_cap(wait) {
            return Err(queue_full(from, wait));
        }
        let wait = self.charge(seq, parts, rate, false, now);
        Ok((from, Reason::Explicit, MappingOutcome::None, wait))
    }

    fn select(
        &mut self,
        to: PhoneNumber,
        parts: u32,
        rates: &BTreeMap<PhoneNumber, Option<f64>>,
        now: u32,
    ) -> Result<(PhoneNumber, Reason, MappingOutcome, u64), Error> {
        self.daily_limit(now)?;
        let s = self
            .settings
            .clone()
            .ok_or(Error::NoSender(NoSender::PoolDisabled))?;
        let rate = |n: PhoneNumber| rate_of(rates.get(&n).copied().flatten(), n);
        let w = [s.long_code_weight, s.toll_free_weight];
        let available = |n: PhoneNumber| kind_of(n).is_some_and(|k| w[k] > 0.0);
        let new_cap = self.limits.new_per_sender;
        let eligible_but_cap =
            |q: &MSender| available(q.number) && !(s.skip_unhealthy && unhealthy(q, now));
        let eligible =
            |q: &MSender| eligible_but_cap(q) && new_cap.is_none_or(|c| q.counts(now).1 < c);

        if s.sticky_sender {
            if let Some(m) = self.live_mapping(to, now).cloned() {
                if available(m.from) {
                    let seq = self.seq_of(m.from).unwrap();
                    let wait = self.senders[&seq].wait(now);
                    if self.over_cap(wait) {
                        return Err(queue_full(m.from, wait));
                    }
                    self.mappings.get_mut(&to).unwrap().last_used = now;
                    let wait = self.charge(seq, parts, rate(m.from), false, now);
                    return Ok((m.from, Reason::Sticky, MappingOutcome::Reused, wait));
                }
            }
        }

        let mut picked: Option<(u64, Reason)> = None;
        if s.geomatch && !to.is_nanp() {
            // Country geomatch: the only other calling code here is +44.
            let uk = |n: PhoneNumber| !n.is_nanp() && n.to_string().starts_with("+44");
            let same: Vec<u64> = self
                .senders
                .iter()
                .filter(|(_, q)| {
                    uk(q.number) && uk(to) && eligible(q) && !self.over_cap(q.wait(now))
                })
                .map(|(seq, _)| *seq)
                .collect();
            if let Some(q) = self.best("country44", &same, now) {
                self.last.insert("country44".into(), q);
                picked = Some((q, Reason::Geomatch));
            }
        }
        if s.geomatch {
            if let Some(npa) = to.npa() {
                let within = |q: &MSender| eligible(q) && !self.over_cap(q.wait(now));
                let same_npa: Vec<u64> = self
                    .senders
                    .iter()
                    .filter(|(_, q)| q.number.npa() == Some(npa) && within(q))
                    .map(|(seq, _)| *seq)
                    .collect();
                let key = format!("npa{npa}");
                if let Some(q) = self.best(&key, &same_npa, now) {
                    self.last.insert(key, q);
                    picked = Some((q, Reason::Geomatch));
                } else if s.geomatch_region_fallback {
                    if let Some(region) = region_of(npa) {
                        let same_region: Vec<u64> = self
                            .senders
                            .iter()
                            .filter(|(_, q)| {
                                q.number.npa().and_then(region_of) == Some(region) && within(q)
                            })
                            .map(|(seq, _)| *seq)
                            .collect();
                        let key = format!("region{region}");
                        if let Some(q) = self.best(&key, &same_region, now) {
                            self.last.insert(key, q);
                            picked = Some((q, Reason::Geomatch));
                        }
                    }
                }
            }
        }
        let (seq, reason) = match picked {
            Some(p) => p,
            None => {
                let mut cand = [None, None];
                for (k, c) in cand.iter_mut().enumerate() {
                    if w[k] > 0.0 {
                        let of_kind: Vec<u64> = self
                            .senders
                            .iter()
                            .filter(|(_, q)| kind_of(q.number) == Some(k) && eligible(q))
                            .map(|(seq, _)| *seq)
                            .collect();
                        *c = self.best(&format!("kind{k}"), &of_kind, now);
                    }
                }
                // Smooth weighted round-robin over the kinds with a candidate.
                let eff = [0, 1].map(|k| if cand[k].is_some() { w[k] } else { 0.0 });
                let total: f64 = eff.iter().filter(|x| **x > 0.0).sum();
                if total <= 0.0 {
                    let counts = [0, 1].map(|k| {
                        self.senders
                            .values()
                            .filter(|q| kind_of(q.number) == Some(k))
                            .count()
                    });
                    return Err(Error::NoSender(if counts == [0, 0] {
                        NoSender::EmptyPool
                    } else if w.iter().all(|x| *x <= 0.0) {
                        NoSender::BothWeightsZero
                    } else if (0..2).all(|k| counts[k] == 0 || w[k] <= 0.0) {
                        NoSender::NoSenderOfWeightedKind
                    } else if self.senders.values().any(eligible_but_cap) {
                        NoSender::NewRecipientLimit
                    } else {
                        NoSender::NoHealthySender
                    }));
                }
                let mut credit = self.credit;
                let mut best: Option<usize> = None;
                for (k, &weight) in eff.iter().enumerate() {
                    if weight > 0.0 {
                        credit[k] += weight;
                        if best.is_none_or(|b| credit[k] > credit[b]) {
                            best = Some(k);
                        }
                    }
                }
                let k = best.unwrap();
                credit[k] -= total;
                let q = cand[k].unwrap();
                let wait = self.senders[&q].wait(now);
                if self.over_cap(wait) {
                    return Err(queue_full(self.senders[&q].number, wait));
                }
                self.credit = credit;
                self.last.insert(format!("kind{k}"), q);
                (q, Reason::Weighted)
            }
        };
        let from = self.senders[&seq].number;
        let mapping = if s.sticky_sender {
            self.mappings.insert(
                to,
                MMapping {
                    from,
                    created: now,
                    last_used: now,
                    pinned: false,
                },
            );
            MappingOutcome::Created
        } else {
            MappingOutcome::None
        };
        // A pick by geomatch or weight is a new recipient for its sender,
        // sticky sender on or off.
        let wait = self.charge(seq, parts, rate(from), true, now);
        Ok((from, reason, mapping, wait))
    }

    fn remove_sender(&mut self, n: PhoneNumber) -> Option<MSender> {
        let seq = self.seq_of(n)?;
        self.mappings.retain(|_, m| m.from != n);
        self.senders.remove(&seq)
    }

    fn add_sender(&mut self, s: MSender) {
        self.next_seq += 1;
        self.senders.insert(self.next_seq, s);
    }

    fn update(&mut self, update: &SettingsUpdate, now: u32) -> bool {
        let new = match update {
            SettingsUpdate::Keep => self.settings.clone(),
            SettingsUpdate::Disable => None,
            SettingsUpdate::Merge(p) => {
                let bad_w = |w: Option<f64>| w.is_some_and(|w| !w.is_finite() || w < 0.0);
                if bad_w(p.long_code_weight)
                    || bad_w(p.toll_free_weight)
                    || p.sticky_ttl_secs == Some(0)
                {
                    return false;
                }
                let mut s = self.settings.clone().unwrap_or_default();
                if let Some(v) = p.sticky_sender {
                    s.sticky_sender = v;
                }
                if let Some(v) = p.geomatch {
                    s.geomatch = v;
                }
                if let Some(v) = p.long_code_weight {
                    s.long_code_weight = v;
                }
                if let Some(v) = p.toll_free_weight {
                    s.toll_free_weight = v;
                }
                if let Some(v) = p.skip_unhealthy {
                    s.skip_unhealthy = v;
                }
                if p.sticky_ttl_secs.is_some() {
                    s.sticky_ttl_secs = p.sticky_ttl_secs;
                }
                if let Some(v) = p.geomatch_region_fallback {
                    s.geomatch_region_fallback = v;
                }
                Some(s)
            }
        };
        let sticky = |s: &Option<PoolSettings>| s.as_ref().is_some_and(|s| s.sticky_sender);
        if sticky(&self.settings) && !sticky(&new) {
            self.mappings.clear();
        }
        let weights =
            |s: &Option<PoolSettings>| s.as_ref().map(|s| (s.long_code_weight, s.toll_free_weight));
        if weights(&self.settings) != weights(&new) {
            self.credit = [0.0; 2];
        }
        // A new ttl applies to live mappings; expired ones stay expired.
        let ttl = self.ttl();
        self.mappings
            .retain(|_, m| m.pinned || now < m.last_used + ttl);
        self.settings = new;
        true
    }
}

// ---- Running both ----------------------------------------------------------

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = EngineConfig {
        sticky_ttl_secs: DEFAULT_TTL,
        sticky_shards: 2,
        health: health_config(),
        arbiters: 1,
        expire_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_clock(config, clock.clone()).unwrap();
    let result = run_on(&engine, &clock, ops);
    block_on(engine.shutdown());
    result
}

fn run_on(engine: &Engine, clock: &ManualClock, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let ids: Vec<ProfileId> = (0..PROFILES).map(|_| ProfileId::new_v4()).collect();
    let mut now: u32 = 1_800_000_000;
    let start = SettingsUpdate::Merge(SettingsPatch {
        sticky_sender: Some(true),
        ..Default::default()
    });
    let create = |id: ProfileId| {
        block_on(engine.create_profile(NewProfile {
            id: Some(id),
            number_pool_settings: start.clone(),
            ..Default::default()
        }))
        .map(|_| ())
    };
    for (i, id) in ids.iter().enumerate() {
        create(*id).unwrap();
        let mut p = MProfile::default();
        p.update(&start, now);
        model.profiles.insert(i, p);
    }
    let num = |i: usize| PhoneNumber::parse_sender(NUMBERS[i]).unwrap();
    let rcp = |i: usize| PhoneNumber::parse_e164(RECIPIENTS[i]).unwrap();

    for op in ops {
        clock.set(Timestamp::from_secs(u64::from(now)));
        match op {
            Op::Send {
                profile,
                to,
                parts,
                from,
            } => {
                let mut message = Outbound::to(rcp(to)).parts(parts);
                if let Some(f) = from {
                    message = message.from_sender(num(f));
                }
                let got = engine
                    .send_now(ids[profile], message)
                    .map(|s| (s.sender, s.reason, s.mapping, s.wait.as_nanos() as u64));
                let rates = &model.rates;
                let want = match (model.profiles.get_mut(&profile), from) {
                    (None, _) => Err(Error::UnknownProfile),
                    (Some(p), None) => p.select(rcp(to), parts, rates, now),
                    (Some(p), Some(f)) => {
                        let rate = rate_of(rates.get(&num(f)).copied().flatten(), num(f));
                        p.send_from(num(f), parts, rate, now)
                    }
                };
                prop_assert_eq!(
                    got,
                    want,
                    "send to {} on profile {}",
                    RECIPIENTS[to],
                    profile
                );
            }
            Op::Assign { number, profile } => {
                let n = num(number);
                let got = block_on(engine.assign_number(n, Some(ids[profile])));
                if !model.profiles.contains_key(&profile) {
                    prop_assert_eq!(got, Err(Error::UnknownProfile));
                    continue;
                }
                prop_assert!(got.is_ok());
                model.rates.entry(n).or_insert(None);
                let old = model.owners.get(&n).copied();
                if old != Some(profile) {
                    let moved = old
                        .and_then(|o| model.profiles.get_mut(&o).unwrap().remove_sender(n))
                        .unwrap_or_else(|| MSender::new(n));
                    model.profiles.get_mut(&profile).unwrap().add_sender(moved);
                    model.owners.insert(n, profile);
                }
            }
            Op::Unassign { number } => {
                let n = num(number);
                let _ = block_on(engine.assign_number(n, None));
                if let Some(o) = model.owners.remove(&n) {
                    model.profiles.get_mut(&o).unwrap().remove_sender(n);
                }
            }
            Op::Patch { profile, update } => {
                let got = block_on(engine.update_profile(
                    ids[profile],
                    ProfileUpdate {
                        number_pool_settings: update.clone(),
                        ..Default::default()
                    },
                ))
                .map(|_| ());
                match model.profiles.get_mut(&profile) {
                    Some(p) => prop_assert_eq!(got.is_ok(), p.update(&update, now)),
                    None => prop_assert_eq!(got, Err(Error::UnknownProfile)),
                }
            }
            Op::Report {
                number,
                delivered,
                spam,
                count,
            } => {
                let n = num(number);
                let outcome = DeliveryOutcome { delivered, spam };
                for _ in 0..count {
                    let got = block_on(engine.report_outcome(n, outcome));
                    prop_assert_eq!(got, Ok(model.owners.contains_key(&n)));
                }
                if let Some(o) = model.owners.get(&n) {
                    let p = model.profiles.get_mut(o).unwrap();
                    let seq = p.seq_of(n).unwrap();
                    let s = p.senders.get_mut(&seq).unwrap();
                    s.outcomes.extend((0..count).map(|_| (now, outcome)));
                }
            }
            Op::Advance { secs } => now += secs,
            Op::Limits { profile, update } => {
                let got = block_on(engine.update_profile(
                    ids[profile],
                    ProfileUpdate {
                        capacity: update.clone(),
                        ..Default::default()
                    },
                ))
                .map(|_| ());
                match model.profiles.get_mut(&profile) {
                    None => prop_assert_eq!(got, Err(Error::UnknownProfile)),
                    Some(p) => {
                        let mut l = p.limits;
                        if let Some(q) = update.max_queue_seconds {
                            l.max_queue_secs = q;
                        }
                        if let Some(d) = update.daily_message_limit {
                            l.daily = d;
                        }
                        if let Some(r) = update.new_recipients_per_sender_per_day {
                            l.new_per_sender = r;
                        }
                        let valid = l.max_queue_secs > 0.0
                            && l.daily != Some(0)
                            && l.new_per_sender != Some(0);
                        prop_assert_eq!(got.is_ok(), valid);
                        if valid {
                            p.limits = l;
                        }
                    }
                }
            }
            Op::Rate { number, rate } => {
                let n = num(number);
                let got = block_on(engine.set_rate(n, rate)).map(|_| ());
                let valid = rate.is_none_or(|r| (1.0 / 86_400.0..=100_000.0).contains(&r));
                match model.rates.get_mut(&n) {
                    _ if !valid => prop_assert!(got.is_err()),
                    None => prop_assert_eq!(got, Err(Error::UnknownNumber)),
                    Some(r) => {
                        prop_assert!(got.is_ok());
                        // What is queued goes at the new rate: its time
                        // left is rescaled by the new time per part.
                        let (before, after) = (busy(1, rate_of(*r, n)), busy(1, rate_of(rate, n)));
                        *r = rate;
                        let owner = model.owners.get(&n).copied();
                        if let Some(q) = owner
                            .and_then(|o| model.profiles.get_mut(&o))
                            .and_then(|p| p.senders.values_mut().find(|q| q.number == n))
                        {
                            let now_ns = ns(now);
                            if q.free_ns > now_ns && before != after {
                                let queued = (q.free_ns - now_ns) as f64 / before as f64;
                                q.free_ns = now_ns + (queued * after as f64).ceil() as u64;
                            }
                        }
                    }
                }
            }
            Op::Expire => {
                block_on(engine.expire_now());
            }
            Op::Pin { profile, to, from } => {
                let got = block_on(engine.pin(ids[profile], rcp(to), num(from))).map(|m| m.from);
                let want = match model.profiles.get_mut(&profile) {
                    None => Err(Error::UnknownProfile),
                    Some(p) if !p.settings.as_ref().is_some_and(|s| s.sticky_sender) => {
                        Err(Error::Pin(PinError::StickyOff))
                    }
                    Some(p) if p.seq_of(num(from)).is_none() => {
                        Err(Error::Pin(PinError::SenderNotInPool))
                    }
                    Some(_) if num(from).is_short_code() => Err(Error::Pin(PinError::ShortCode)),
                    Some(p) => {
                        p.mappings.insert(
                            rcp(to),
                            MMapping {
                                from: num(from),
                                created: now,
                                last_used: now,
                                pinned: true,
                            },
                        );
                        Ok(num(from))
                    }
                };
                prop_assert_eq!(got, want);
            }
            Op::Unmap { profile, to } => {
                let got = block_on(engine.unmap(ids[profile], rcp(to))).map(|m| m.map(|m| m.from));
                let want = match model.profiles.get_mut(&profile) {
                    None => Err(Error::UnknownProfile),
                    Some(p) => {
                        let live = p.live_mapping(rcp(to), now).map(|m| m.from);
                        p.mappings.remove(&rcp(to));
                        Ok(live)
                    }
                };
                prop_assert_eq!(got, want);
            }
            Op::Recreate { profile } => {
                if model.profiles.remove(&profile).is_some() {
                    let freed = block_on(engine.numbers(Some(ids[profile]))).unwrap().len();
                    block_on(engine.delete_profile(ids[profile])).unwrap();
                    let before = model.owners.len();
                    model.owners.retain(|_, o| *o != profile);
                    prop_assert_eq!(freed, before - model.owners.len());
                    prop_assert!(block_on(engine.numbers(None))
                        .unwrap()
                        .iter()
                        .all(|n| n.record.profile != Some(ids[profile])));
                } else {
                    create(ids[profile]).unwrap();
                    let mut p = MProfile::default();
                    p.update(&start, now);
                    model.profiles.insert(profile, p);
                }
            }
        }

        clock.set(Timestamp::from_secs(u64::from(now)));
        // Every visible mapping agrees after every step.
        for (i, id) in ids.iter().enumerate() {
            let Some(mp) = model.profiles.get(&i) else {
                prop_assert!(engine.profile(*id).is_err());
                continue;
            };
            let ep = engine.profile(*id).unwrap();
            prop_assert_eq!(ep.number_pool_settings.as_ref(), mp.settings.as_ref());
            let got: Vec<_> = block_on(engine.mappings(*id))
                .unwrap()
                .into_iter()
                .map(|m| (m.to, m.from, m.created_at, m.last_used_at, m.pinned))
                .collect();
            let want: Vec<_> = mp
                .mappings
                .keys()
                .filter_map(|to| {
                    let m = mp.live_mapping(*to, now)?;
                    Some((*to, m.from, m.created, m.last_used, m.pinned))
                })
                .collect();
            prop_assert_eq!(got, want, "mappings of profile {}", i);
            let got: Vec<_> = block_on(engine.numbers(Some(*id)))
                .unwrap()
                .into_iter()
                .map(|s| {
                    let c = s.capacity.unwrap();
                    let wait = c.wait.as_nanos() as u64;
                    (
                        s.record.number,
                        wait,
                        c.messages_today,
                        c.new_recipients_today,
                        (s.sticky_mappings, s.pinned_mappings),
                    )
                })
                .collect();
            // Live mappings per sender, pinned among them, counted by scan.
            let mut mapped: BTreeMap<PhoneNumber, (u32, u32)> = BTreeMap::new();
            for to in mp.mappings.keys() {
                if let Some(m) = mp.live_mapping(*to, now) {
                    let c = mapped.entry(m.from).or_default();
                    c.0 += 1;
                    c.1 += u32::from(m.pinned);
                }
            }
            let mut want: Vec<_> = mp
                .senders
                .values()
                .map(|q| {
                    let (messages, new) = q.counts(now);
                    let counts = mapped.get(&q.number).copied().unwrap_or_default();
                    (q.number, q.wait(now), messages, new, counts)
                })
                .collect();
            want.sort();
            prop_assert_eq!(got, want, "senders of profile {}", i);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_reference_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
