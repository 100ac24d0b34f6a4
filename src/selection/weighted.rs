//! Smooth weighted round-robin between the two pickable sender kinds.
//!
//! This is the deterministic scheme nginx uses for upstream weights: each
//! pick adds every weight to its kind's running credit, takes the kind with
//! the most credit (the first on a tie), and charges it the total. With
//! weights 5 and 1 the picks repeat `L L L T L L`, so every window of six
//! consecutive picks holds exactly five long codes and one toll-free number.

/// Index of long codes in weight arrays.
pub(crate) const LONG_CODE: usize = 0;
/// Index of toll-free numbers in weight arrays.
pub(crate) const TOLL_FREE: usize = 1;

/// The running credit of each kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SmoothWeighted {
    credit: [f64; 2],
}

impl SmoothWeighted {
    /// Picks a kind. A kind with weight 0 takes no part (its credit is kept
    /// as it is). `None` when every weight is 0.
    #[inline]
    pub(crate) fn pick(&mut self, weights: [f64; 2]) -> Option<usize> {
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        if total <= 0.0 {
            return None;
        }
        let mut best: Option<usize> = None;
        for kind in [LONG_CODE, TOLL_FREE] {
            if weights[kind] > 0.0 {
                self.credit[kind] += weights[kind];
                if best.is_none_or(|b| self.credit[kind] > self.credit[b]) {
                    best = Some(kind);
                }
            }
        }
        let best = best?;
        self.credit[best] -= total;
        Some(best)
    }

    /// Forgets the credit, so a new set of weights starts a fresh cycle.
    pub(crate) fn reset(&mut self) {
        self.credit = [0.0; 2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_to_one_in_every_window_of_six() {
        let mut w = SmoothWeighted::default();
        let picks: Vec<usize> = (0..60).map(|_| w.pick([5.0, 1.0]).unwrap()).collect();
        for window in picks.windows(6) {
            assert_eq!(
                window.iter().filter(|&&k| k == TOLL_FREE).count(),
                1,
                "{picks:?}"
            );
        }
    }

    #[test]
    fn zero_weight_never_picked() {
        let mut w = SmoothWeighted::default();
        assert!((0..20).all(|_| w.pick([0.0, 2.0]) == Some(TOLL_FREE)));
        assert_eq!(w.pick([0.0, 0.0]), None);
    }

    #[test]
    fn fractional_weights_share_proportionally() {
        let mut w = SmoothWeighted::default();
        let tf = (0..1000)
            .filter(|_| w.pick([0.3, 0.7]) == Some(TOLL_FREE))
            .count();
        assert_eq!(tf, 700);
    }
}
