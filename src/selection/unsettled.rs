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

/// How many recipients are noted before the written ones are forgotten.
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
    /// The list stays as long as the writes in flight.
    pub(crate) fn forget_written(&mut self, written: u64) {
        if self.newest <= written {
            self.recipients.clear();
            self.sorted = 0;
        } else if self.recipients.len() >= FORGET_FROM {
            self.keep_unwritten(written);
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
            self.recipients.sort_unstable_by_key(|&(to, _)| to);
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

    /// Against a model that keeps each recipient's newest append: notes,
    /// forgetting and look-ups interleaved, with the sorted part and the
    /// recipients added since both looked up, and recipients noted twice.
    #[test]
    fn look_ups_agree_with_the_newest_append_of_each_recipient() {
        let mut model = std::collections::HashMap::<PhoneNumber, u64>::new();
        let mut u = Unsettled::default();
        let (mut append, mut written, mut seed) = (0u64, 0u64, 7u64);
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let number = |i: u64| PhoneNumber::parse_e164(&format!("+1415555{i:04}")).unwrap();
        let (mut sorted_hits, mut waits) = (0, 0);
        for _ in 0..20_000 {
            match next(10) {
                0..=4 => {
                    append += 1;
                    let to = number(next(200));
                    u.recipient(to, append);
                    model.insert(to, append);
                }
                5 => {
                    written = (written + next(4)).min(append);
                    u.forget_written(written);
                }
                _ => {
                    let reads: Vec<_> = (0..=next(3)).map(|_| number(next(200))).collect();
                    let expected = reads
                        .iter()
                        .any(|to| model.get(to).is_some_and(|&a| a > written));
                    sorted_hits += usize::from(
                        expected
                            && u.recipients[..u.sorted]
                                .iter()
                                .any(|e| reads.contains(&e.0)),
                    );
                    assert_eq!(
                        u.must_wait(super::tests::reads(&reads, false), written),
                        expected
                    );
                    waits += usize::from(expected);
                }
            }
        }
        // Both parts of the list were looked up, and many replies waited.
        assert!(sorted_hits > 100 && waits > 1000, "{sorted_hits} {waits}");
    }
}
