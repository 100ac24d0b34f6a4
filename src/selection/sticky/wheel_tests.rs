//! Unit tests of the timing wheel, with a plain vector as the owner's storage.

use super::*;

/// A minimal owner: a link and a deadline per entry, and a log of when each
/// entry was found due.
#[derive(Default)]
struct Owner {
    links: Vec<u32>,
    deadlines: Vec<u64>,
    due_at: Vec<Option<u64>>,
    reached: usize,
}

impl WheelLinks for Owner {
    fn link(&self, id: u32) -> u32 {
        self.links[id as usize]
    }
    fn set_link(&mut self, id: u32, next: u32) {
        self.links[id as usize] = next;
    }
}

impl Owner {
    fn add(&mut self, wheel: &mut TimerWheel, deadline: u64) -> u32 {
        let id = self.links.len() as u32;
        self.links.push(NIL);
        self.deadlines.push(deadline);
        self.due_at.push(None);
        wheel.insert(self, id, deadline);
        id
    }

    /// Advances to `now`: entries whose deadline has come are recorded as due
    /// at `now` and dropped; the others are kept at their (maybe moved) deadline.
    fn advance(&mut self, wheel: &mut TimerWheel, now: u64) -> Advance {
        wheel.advance(now, self, usize::MAX, |o, id| {
            o.reached += 1;
            let deadline = o.deadlines[id as usize];
            if deadline <= now {
                assert!(o.due_at[id as usize].is_none(), "entry {id} due twice");
                o.due_at[id as usize] = Some(now);
                None
            } else {
                Some(deadline)
            }
        })
    }
}

#[test]
fn exact_slot_placement_from_zero() {
    let wheel = TimerWheel::new(0);
    assert_eq!(wheel.position(0), (0, 0));
    assert_eq!(wheel.position(5), (0, 5));
    assert_eq!(wheel.position(63), (0, 63));
    assert_eq!(wheel.position(64), (1, 1));
    assert_eq!(wheel.position(4095), (1, 63));
    assert_eq!(wheel.position(4096), (2, 1));
    assert_eq!(wheel.position(64 * 64 * 64), (3, 1));
    // Eight days in seconds: 691200 = 2 * 64^3 + ...
    assert_eq!(wheel.position(8 * 24 * 3600), (3, 2));
    assert_eq!(wheel.position(MAX_TICK), (5, 63));
    assert_eq!(wheel.position(u64::MAX), (5, 63));
}

#[test]
fn placement_is_relative_to_the_current_tick() {
    let wheel = TimerWheel::new(100); // in the level-0 window 64..128
    assert_eq!(wheel.position(120), (0, 120 % 64));
    assert_eq!(wheel.position(130), (1, 2)); // next 64-tick window
    assert_eq!(wheel.position(50), (0, 100 % 64)); // past: due at the next advance
}

#[test]
fn cascades_down_and_fires_on_the_exact_tick() {
    let mut wheel = TimerWheel::new(0);
    let mut owner = Owner::default();
    let id = owner.add(&mut wheel, 5000);
    assert_eq!(wheel.position(5000), (2, 1));
    // Reaching tick 4096 cascades the level-2 slot: the entry is reached but not due.
    let a = owner.advance(&mut wheel, 4096);
    assert_eq!((a.visited, a.done), (1, true));
    assert_eq!(owner.due_at[id as usize], None);
    assert_eq!(wheel.len(), 1);
    // Now it sits at level 1: 5000 is in the 64-tick window starting at 4992.
    assert_eq!(wheel.position(5000), (1, 5000 / 64 % 64));
    owner.advance(&mut wheel, 4999);
    assert_eq!(owner.due_at[id as usize], None);
    owner.advance(&mut wheel, 5000);
    assert_eq!(owner.due_at[id as usize], Some(5000));
    assert!(wheel.is_empty());
}

#[test]
fn rearming_moves_an_entry_later() {
    let mut wheel = TimerWheel::new(0);
    let mut owner = Owner::default();
    let id = owner.add(&mut wheel, 10);
    // The owner postpones the deadline without telling the wheel.
    owner.deadlines[id as usize] = 300;
    owner.advance(&mut wheel, 10);
    assert_eq!(owner.due_at[id as usize], None, "re-armed, not due");
    assert_eq!(wheel.len(), 1);
    owner.advance(&mut wheel, 299);
    assert_eq!(owner.due_at[id as usize], None);
    owner.advance(&mut wheel, 300);
    assert_eq!(owner.due_at[id as usize], Some(300));
}

#[test]
fn nothing_early_nothing_late_tick_by_tick() {
    let mut wheel = TimerWheel::new(1_000);
    let mut owner = Owner::default();
    // Deadlines spread over every level boundary up to 70 000 ticks ahead.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        owner.add(&mut wheel, 1_000 + x % 70_000);
    }
    for b in [1_063u64, 1_064, 1_065, 4_095, 4_096, 4_097, 5_120] {
        owner.add(&mut wheel, b);
    }
    for now in 1_000..=71_000 {
        owner.advance(&mut wheel, now);
    }
    for (id, due) in owner.due_at.iter().enumerate() {
        assert_eq!(*due, Some(owner.deadlines[id]), "entry {id}");
    }
    assert!(wheel.is_empty());
}

#[test]
fn big_jumps_fire_at_the_first_advance_past_the_deadline() {
    let mut wheel = TimerWheel::new(0);
    let mut owner = Owner::default();
    let deadlines = [1u64, 63, 64, 65, 4_000, 4_096, 300_000, 691_200, 20_000_000];
    for d in deadlines {
        owner.add(&mut wheel, d);
    }
    let checkpoints = [0u64, 64, 70, 5_000, 691_199, 691_200, 30_000_000];
    for now in checkpoints {
        owner.advance(&mut wheel, now);
    }
    for (id, d) in deadlines.iter().enumerate() {
        let first = *checkpoints.iter().find(|&&c| c >= *d).unwrap();
        assert_eq!(owner.due_at[id], Some(first), "deadline {d}");
    }
}

#[test]
fn advancing_an_idle_wheel_reaches_nothing() {
    let mut wheel = TimerWheel::new(0);
    let mut owner = Owner::default();
    let id = owner.add(&mut wheel, 1 << 30);
    // A jump of a billion ticks reaches only the slots that hold entries.
    let a = owner.advance(&mut wheel, (1 << 30) - 1);
    assert!(a.visited <= 4, "reached {} times", a.visited);
    assert_eq!(owner.due_at[id as usize], None);
    owner.advance(&mut wheel, 1 << 30);
    assert_eq!(owner.due_at[id as usize], Some(1 << 30));
}

#[test]
fn budget_splits_a_large_batch() {
    let mut wheel = TimerWheel::new(0);
    let mut owner = Owner::default();
    for _ in 0..1_000 {
        owner.add(&mut wheel, 7);
    }
    let mut calls = 0;
    loop {
        calls += 1;
        let a = wheel.advance(7, &mut owner, 100, |o, id| {
            o.due_at[id as usize] = Some(7);
            None
        });
        assert!(a.visited <= 100);
        if a.done {
            break;
        }
    }
    assert_eq!(calls, 10); // the tenth slice takes the last entries and reports done
    assert!(owner.due_at.iter().all(|d| *d == Some(7)));
    assert!(wheel.is_empty());
}

#[test]
fn entries_inserted_while_behind_are_due_next_advance() {
    let mut wheel = TimerWheel::new(100);
    let mut owner = Owner::default();
    let id = owner.add(&mut wheel, 90);
    owner.advance(&mut wheel, 100);
    assert_eq!(owner.due_at[id as usize], Some(100));
}
