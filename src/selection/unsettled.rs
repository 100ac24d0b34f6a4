//! What of a profile's state is still on its way to the journal (in a
//! cluster: to etcd, then the local log), by the journal's append number.
//!
//! A reply that read such state must not be acknowledged before it is
//! written: a sticky hit on a mapping whose record could still be lost
//! would hand out a sender that a restart (or a new leader) does not know.
//! Kept per recipient, so that a write for one recipient does not hold up
//! the replies for every other recipient of the profile. The daily counts
//! are kept apart: under a daily cap every send consumes them, so its reply
//! waits for a count still on its way (without a cap, counts only inform,
//! and a failover may lose at most one reserved block of them). Anything
//! else counts for the profile as a whole.
//!
//! Every new mapping a journal records is noted here, but few replies ever
//! look a recipient up: a reply that writes records of its own waits for
//! them, and so for every append before them, whatever it read. So the
//! recipients are a list, appended to in order; a look-up searches its
//! sorted part and scans what was added since, and sorts the whole list
//! once that part grows past [`UNSORTED_MAX`]. A hash map cost a cache
//! miss per new mapping (2.7% of a batched run's time with the journal on).

use crate::number::PhoneNumber;

/// How many recipients are noted before the written ones are first
/// looked for and forgotten.
const FORGET_FROM: usize = 64;

/// How many recipients noted since the list was last sorted a look-up
/// scans one by one before it sorts the list instead.
const UNSORTED_MAX: usize = 16;

/// The append numbers of a profile's records not yet known to be written.
#[derive(Debug, Default)]
pub(crate) struct Unsettled {
    /// Recipients and the append that journaled their state, in the order
    /// noted after the first `sorted`; a recipient may be noted more than
    /// once.
    recipients: Vec<(PhoneNumber, u64)>,
    /// How many of `recipients`, from the first, are sorted by recipient.
    sorted: usize,
    /// The length at which the written recipients are next looked for
    /// (at least [`FORGET_FROM`]): twice what was left the last time, so
    /// that a journal that stays behind (a cluster leader's, waiting for
    /// etcd) costs one pass over the list each time it doubles, not one
    /// per append.
    forget_at: usize,
    /// The newest append noted in `recipients`.
    newest: u64,
    daily: u64,
    whole: u64,
}

/// What a reply read of its profile's state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reads<I> {
    /// The recipients whose mapping or opt-out it read.
    pub recipients: I,
    /// Whether it consumed daily counts that a cap depends on.
    pub daily: bool,
}

impl Reads<[PhoneNumber; 1]> {
    /// A reply that read `to`'s state alone.
    pub(crate) fn recipient(to: PhoneNumber) -> Self {
        Reads {
            recipients: [to],
            daily: false,
        }
    }
}

impl Unsettled {
    /// Notes that `to`'s state was journaled as append `append`.
    #[inline]
    pub(crate) fn recipient(&mut self, to: PhoneNumber, append: u64) {
        self.recipients.push((to, append));
        self.newest = self.newest.max(append);
    }

    /// Notes that the daily counts were journaled as append `append`.
    pub(crate) fn daily(&mut self, append: u64) {
        self.daily = append;
    }

    /// Notes a record about the profile as a whole, as append `append`.
    pub(crate) fn whole(&mut self, append: u64) {
        self.whole = append;
    }

    /// Forgets what is written (up to append `written`): all of it at once
    /// when everything noted is written (the usual case: a sender waits for
    /// its batch before the next), else once enough recipients are noted.
    /// The list stays within twice the recipients in flight (or
    /// [`FORGET_FROM`]).
    pub(crate) fn forget_written(&mut self, written: u64) {
        if self.newest <= written {
            self.recipients.clear();
            self.sorted = 0;
            self.forget_at = FORGET_FROM;
        } else if self.recipients.len() >= self.forget_at.max(FORGET_FROM) {
            self.keep_unwritten(written);
            self.forget_at = 2 * self.recipients.len();
        }
    }

    /// Drops the recipients written (up to append `written`), keeping the
    /// order of the rest, and so the sorted part sorted.
    fn keep_unwritten(&mut self, written: u64) {
        let (sorted, mut seen, mut kept_sorted) = (self.sorted, 0, 0);
        self.recipients.retain(|&(_, append)| {
            let keep = append > written;
            kept_sorted += usize::from(keep && seen < sorted);
            seen += 1;
            keep
        });
        self.sorted = kept_sorted;
    }

    /// Whether anything of the profile is still unwritten (the journal has
    /// written every append up to `written`): what a reply that read the
    /// profile as a whole (a listing, its counters) waits for.
    pub(crate) fn any_unwritten(&self, written: u64) -> bool {
        // The newest noted recipient is kept until it is written.
        self.whole.max(self.daily).max(self.newest) > written
    }

    /// Whether a reply that read `reads` must wait for the journal, which
    /// has written every append up to `written`.
    pub(crate) fn must_wait(
        &mut self,
        reads: Reads<impl IntoIterator<Item = PhoneNumber>>,
        written: u64,
    ) -> bool {
        if self.whole > written || (reads.daily && self.daily > written) {
            return true;
        }
        // Once the newest noted append is written, none can be unwritten:
        // no look-up per recipient read (a batch's group reads hundreds).
        if self.newest <= written {
            return false;
        }
        if self.recipients.len() - self.sorted > UNSORTED_MAX {
            self.keep_unwritten(written);
            // A stable sort finds the sorted part as one run and merges
            // the rest into it.
            self.recipients.sort_by_key(|&(to, _)| to);
            self.sorted = self.recipients.len();
        }
        let (sorted, unsorted) = self.recipients.split_at(self.sorted);
        let unwritten = |&(_, append): &(PhoneNumber, u64)| append > written;
        reads.recipients.into_iter().any(|to| {
            let from = sorted.partition_point(|&(t, _)| t < to);
            sorted[from..]
                .iter()
                .take_while(|&&(t, _)| t == to)
                .any(unwritten)
                || unsorted.iter().any(|e| e.0 == to && unwritten(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse_e164(s).unwrap()
    }

    fn reads(to: &[PhoneNumber], daily: bool) -> Reads<Vec<PhoneNumber>> {
        Reads {
            recipients: to.to_vec(),
            daily,
        }
    }

    #[test]
    fn only_a_reply_that_read_unwritten_state_waits() {
        let (a, b) = (n("+14155550001"), n("+14155550002"));
        let mut u = Unsettled::default();
        u.recipient(a, 5);
        // a's record is append 5: a reply about a waits until it is written.
        assert!(u.must_wait(reads(&[a], false), 4));
        assert!(!u.must_wait(reads(&[a], false), 5));
        // Another recipient's reply does not wait for it.
        assert!(!u.must_wait(reads(&[b], false), 4));
        u.daily(7);
        assert!(u.must_wait(reads(&[b], true), 6));
        assert!(!u.must_wait(reads(&[b], false), 6));
        u.whole(9);
        assert!(u.must_wait(reads(&[], false), 8));
        assert!(!u.must_wait(reads(&[a, b], true), 9));
    }

    #[test]
    fn a_whole_read_waits_for_anything_unwritten() {
        let mut u = Unsettled::default();
        assert!(!u.any_unwritten(0));
        u.recipient(n("+14155550001"), 3);
        assert!(u.any_unwritten(2) && !u.any_unwritten(3));
        u.daily(4);
        assert!(u.any_unwritten(3) && !u.any_unwritten(4));
        u.whole(5);
        assert!(u.any_unwritten(4) && !u.any_unwritten(5));
    }

    #[test]
    fn written_recipients_are_forgotten_but_unwritten_ones_kept() {
        let mut u = Unsettled::default();
        for i in 0..FORGET_FROM as u64 {
            u.recipient(
                PhoneNumber::parse_e164(&format!("+1415555{i:04}")).unwrap(),
                i + 1,
            );
        }
        u.forget_written(10);
        assert_eq!(u.recipients.len(), FORGET_FROM - 10);
        let kept = n("+14155550010"); // append 11
        assert!(u.must_wait(reads(&[kept], false), 10));
        // Below the threshold, what is written stays while anything is
        // not; once all of it is written, all of it goes, however few.
        u.forget_written(FORGET_FROM as u64 - 1);
        assert_eq!(u.recipients.len(), FORGET_FROM - 10);
        u.forget_written(FORGET_FROM as u64);
        assert!(u.recipients.is_empty());
        assert!(!u.any_unwritten(FORGET_FROM as u64));
    }

    /// Against a model that keeps each recipient's newest append (the hash
    /// map this list replaced): groups of notes under one append, as
    /// `Env::journal_for` makes them, look-ups and forgetting, under a
    /// journal that catches up at once, one that stays a few appends
    /// behind, and one that falls further behind; few recipients (each
    /// noted many times) and many. After every step the sorted part is
    /// sorted, and the list within twice the most recipients in flight
    /// since it was last empty (plus a group).
    #[test]
    fn look_ups_agree_with_the_newest_append_of_each_recipient() {
        #[derive(Clone, Copy, Debug)]
        enum Journal {
            CatchesUp,
            Behind(u64),
            FallsBehind,
        }
        let mut tried = (0, 0);
        for (case, journal) in [
            Journal::CatchesUp,
            Journal::Behind(3),
            Journal::Behind(40),
            Journal::FallsBehind,
        ]
        .into_iter()
        .enumerate()
        {
            for recipients in [3, 200, 100_000] {
                tried = model_run(journal, recipients, case as u64 * 31 + recipients, tried);
            }
        }
        // Replies that had to wait were found in both parts of the list.
        assert!(tried.0 > 300 && tried.1 > 300, "{tried:?}");

        fn model_run(
            journal: Journal,
            recipients: u64,
            seed: u64,
            tried: (usize, usize),
        ) -> (usize, usize) {
            let (mut found_sorted, mut found_tail) = tried;
            let mut model = std::collections::HashMap::<PhoneNumber, u64>::new();
            let mut u = Unsettled::default();
            let (mut append, mut written, mut seed) = (0u64, 0u64, seed | 1);
            let mut next = move |below: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % below
            };
            let number = |i: u64| PhoneNumber::from_u64(14_155_000_000 + i).unwrap();
            let mut in_flight = std::collections::VecDeque::new();
            // The most recipients in flight since the list was last empty.
            let mut peak = 0;
            for _ in 0..3_000 {
                // The journal writes: how far depends on the case.
                written = match journal {
                    Journal::CatchesUp => append,
                    Journal::Behind(lag) => append.saturating_sub(lag),
                    Journal::FallsBehind => written + next(2),
                }
                .max(written)
                .min(append);
                while in_flight.front().is_some_and(|&(_, a)| a <= written) {
                    in_flight.pop_front();
                }
                if next(3) == 0 {
                    let reads: Vec<_> = (0..next(40)).map(|_| number(next(recipients))).collect();
                    let expected = reads
                        .iter()
                        .any(|to| model.get(to).is_some_and(|&a| a > written));
                    let (sorted, tail) = u.recipients.split_at(u.sorted);
                    let unwritten = |part: &[(PhoneNumber, u64)]| {
                        part.iter().any(|e| e.1 > written && reads.contains(&e.0))
                    };
                    let (in_sorted, in_tail) = (unwritten(sorted), unwritten(tail));
                    assert_eq!(u.must_wait(self::reads(&reads, false), written), expected);
                    found_sorted += usize::from(in_sorted && !in_tail);
                    found_tail += usize::from(in_tail && !in_sorted);
                } else {
                    // One reply's records: a group of notes under one append.
                    append += 1;
                    u.forget_written(written);
                    for _ in 0..[1, 16, 17, 70][next(4) as usize] {
                        let to = number(next(recipients));
                        u.recipient(to, append);
                        model.insert(to, append);
                        in_flight.push_back((to, append));
                    }
                }
                let list = &u.recipients;
                assert!(u.sorted <= list.len());
                assert!(list[..u.sorted].windows(2).all(|w| w[0].0 <= w[1].0));
                peak = if list.is_empty() {
                    0
                } else {
                    peak.max(in_flight.len())
                };
                assert!(
                    list.len() <= 2 * peak.max(FORGET_FROM) + 70,
                    "{} {peak}",
                    list.len()
                );
            }
            (found_sorted, found_tail)
        }
    }
}
