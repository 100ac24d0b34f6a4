//! A batch's answers by position, written once each as groups are served.
//!
//! A batch groups its messages by profile and serves the groups in any
//! order, so answers arrive scattered over the result vector. Filling that
//! vector with placeholders first, then dropping each placeholder as its
//! answer lands, cost about an eighth of a batched send (4,096 answers of
//! 48 bytes written twice). [`Answers`] leaves the slots unwritten instead
//! and keeps one bit per slot saying which are written; a slot nobody
//! answered (only possible if a group was abandoned half way) reads as
//! [`Error::Internal`]. A group queued on its profile's mailbox fills
//! answers of its own on the engine's thread, in the same way, and the
//! batch copies them to its positions.

use std::mem::{ManuallyDrop, MaybeUninit};

use crate::error::Error;
use crate::selection::rules::{Refusal, Selection};

/// One message's answer.
pub(crate) type Answer = Result<Selection, Error>;

/// Answers by position; see the module docs.
pub(crate) struct Answers {
    slots: Vec<MaybeUninit<Answer>>,
    /// Bit `i` set: `slots[i]` holds an answer.
    written: Vec<u64>,
}

impl Answers {
    /// Room for `len` answers, none written.
    pub(crate) fn new(len: usize) -> Answers {
        let mut slots = Vec::with_capacity(len);
        // Uninitialized slots need no writing: `MaybeUninit` may hold anything.
        slots.resize_with(len, MaybeUninit::uninit);
        Answers {
            slots,
            written: vec![0; len.div_ceil(64)],
        }
    }

    /// Fetches the line slot `i` is in ahead of its answer: a group's
    /// answers are spread over the batch (every tenth slot, with ten
    /// profiles in turn), so each write would otherwise wait for its line.
    #[inline]
    pub(crate) fn prefetch(&self, i: usize) {
        if let Some(slot) = self.slots.get(i) {
            crate::selection::prefetch(slot);
        }
    }

    /// Sets the answer at `i`, replacing any answer already there. Always
    /// inlined: called out of line (as one change elsewhere made the
    /// compiler do), it cost a batch about 24 instructions a message more.
    #[inline(always)]
    pub(crate) fn set(&mut self, i: usize, answer: Answer) {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let slot = &mut self.slots[i];
        if self.written[word] & bit != 0 {
            // SAFETY: the bit says this slot holds an answer.
            unsafe { slot.assume_init_drop() };
        }
        slot.write(answer);
        self.written[word] |= bit;
    }

    /// Sets the first answer at `i`, which no answer has reached yet (a
    /// group's own pass: groups do not share positions). Skips the check
    /// for an earlier answer to drop; were there one, it would leak, not
    /// be misread.
    ///
    /// A refusal is written out of line. With both kinds of answer
    /// written here, the compiler built each answer on the stack and
    /// copied it to its slot in 16-byte loads, each covering several of
    /// the narrower stores that built it: such a load cannot take its
    /// bytes from the stores still in flight, so it waited for every
    /// store before it to reach the cache, a sticky entry's and earlier
    /// answers' cache misses included (18% of the selection loop's
    /// samples in `perf`). A selection alone is stored field by field in
    /// place.
    #[inline(always)]
    pub(crate) fn set_first(&mut self, i: usize, answer: Result<Selection, Refusal>) {
        debug_assert!(self.written[i / 64] & (1 << (i % 64)) == 0);
        match answer {
            Ok(s) => {
                self.slots[i].write(Ok(s));
            }
            Err(refusal) => self.write_refusal(i, refusal),
        }
        self.written[i / 64] |= 1u64 << (i % 64);
    }

    /// The refusal half of [`Answers::set_first`], out of line.
    #[cold]
    #[inline(never)]
    fn write_refusal(&mut self, i: usize, refusal: Refusal) {
        self.slots[i].write(Err(refusal.into()));
    }

    /// The answers in order; a slot never set is [`Error::Internal`].
    pub(crate) fn into_vec(mut self) -> Vec<Answer> {
        // Sixty-four slots a look: in a finished batch every bit is set.
        for w in 0..self.written.len() {
            let mut unset = !self.written[w];
            while unset != 0 {
                let i = w * 64 + unset.trailing_zeros() as usize;
                if i >= self.slots.len() {
                    break; // the bits past the last slot
                }
                self.set(i, Err(Error::Internal));
                unset &= unset - 1;
            }
        }
        let mut slots = ManuallyDrop::new(std::mem::take(&mut self.slots));
        let (ptr, len, capacity) = (slots.as_mut_ptr(), slots.len(), slots.capacity());
        // SAFETY: every slot is written (the loop above), and
        // `MaybeUninit<Answer>` has the layout of `Answer`; the vector's
        // allocation passes to the new one, which alone frees it.
        unsafe { Vec::from_raw_parts(ptr.cast::<Answer>(), len, capacity) }
    }
}

impl Drop for Answers {
    /// Drops the answers written (a batch given up before the end).
    fn drop(&mut self) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if self.written[i / 64] & (1 << (i % 64)) != 0 {
                // SAFETY: the bit says this slot holds an answer.
                unsafe { slot.assume_init_drop() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_back_in_place_and_unset_ones_are_internal_errors() {
        let mut answers = Answers::new(130);
        answers.set(129, Err(Error::OptedOut));
        answers.set(0, Err(Error::UnknownProfile));
        // Replaced: the first answer is dropped (strings included).
        answers.set(
            64,
            Err(Error::DestinationNotAllowed {
                region: Some("ON".into()),
            }),
        );
        answers.set(64, Err(Error::DailyLimit));
        let all = answers.into_vec();
        assert_eq!(all.len(), 130);
        assert!(matches!(all[0], Err(Error::UnknownProfile)));
        assert!(matches!(all[64], Err(Error::DailyLimit)));
        assert!(matches!(all[129], Err(Error::OptedOut)));
        // Every other slot, in whole words and in the last, partial one.
        let unset = all
            .iter()
            .enumerate()
            .filter(|(i, _)| ![0, 64, 129].contains(i));
        assert_eq!(unset.clone().count(), 127);
        assert!(unset
            .clone()
            .all(|(_, a)| matches!(a, Err(Error::Internal))));
    }

    /// A group's own pass writes selections in place and refusals out of
    /// line; both read back at their positions, refusals as the engine's
    /// errors, and an answer set but never taken is dropped with the rest.
    #[test]
    fn a_groups_selections_and_refusals_land_in_place() {
        use crate::selection::rules::{MappingOutcome, Reason};
        let selection = |n: u64| Selection {
            sender: crate::PhoneNumber::from_u64(13_125_550_000 + n).unwrap(),
            reason: Reason::Sticky,
            mapping: MappingOutcome::Reused,
            wait: std::time::Duration::from_millis(n),
            send_at: crate::Timestamp::from_millis(1_800_000_000_000 + n),
            touch_due: false,
            starts_block: false,
        };
        let refusal = |i: usize| match i % 3 {
            0 => Refusal::OptedOut,
            1 => Refusal::DailyLimit,
            _ => Refusal::Destination(None),
        };
        let refused = |i: usize| [7, 8, 15, 16, 64].contains(&i);
        let mut answers = Answers::new(70);
        for i in (0..70).rev() {
            let answer = if refused(i) {
                Err(refusal(i))
            } else {
                Ok(selection(i as u64))
            };
            answers.set_first(i, answer);
        }
        let all = answers.into_vec();
        for (i, a) in all.iter().enumerate() {
            if refused(i) {
                assert_eq!(a.as_ref().unwrap_err(), &Error::from(refusal(i)), "at {i}");
            } else {
                assert_eq!(a.as_ref().unwrap(), &selection(i as u64), "at {i}");
            }
        }
        // Dropped half written: the answers set are dropped, nothing else.
        let mut partial = Answers::new(10);
        partial.set_first(3, Err(Refusal::Destination(None)));
        partial.set_first(4, Ok(selection(4)));
        drop(partial);
    }
}
