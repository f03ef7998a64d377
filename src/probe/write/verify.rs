//! What the read-back found, classified against what was acknowledged (DESIGN.md §4):
//! lost (acknowledged, missing), unacknowledged but present, duplicated and out of order
//! (stored logs only), and the data-loss window. Pure: fed entries, no I/O.

use std::time::Duration;

use super::seqset::SeqSet;

/// What the backend holds, accumulated entry by entry (in stored order for logs).
#[derive(Debug, Default)]
pub struct Scan {
    scheduled: u64,
    present: SeqSet,
    duplicated: SeqSet,
    out_of_order: u64,
    highest: Option<u64>,
    /// Entries naming a write this run never scheduled (left out of every count).
    pub ignored: u64,
}

impl Scan {
    /// A scan of a run that scheduled writes `0..scheduled`.
    pub fn new(scheduled: u64) -> Self {
        Scan {
            scheduled,
            ..Scan::default()
        }
    }

    /// Key `seq` exists (per-key reads: no order, no duplicates to see).
    pub fn found(&mut self, seq: u64) {
        if seq < self.scheduled {
            self.present.insert(seq);
        } else {
            self.ignored += 1;
        }
    }

    /// The next entry of a stored log. A second copy of a write is a duplicate and is not
    /// judged for order again; a first copy stored after a higher write is out of order.
    pub fn stored(&mut self, seq: u64) {
        if seq >= self.scheduled {
            self.ignored += 1;
            return;
        }
        if !self.present.insert(seq) {
            self.duplicated.insert(seq);
            return;
        }
        match self.highest {
            Some(h) if seq < h => self.out_of_order += 1,
            _ => self.highest = Some(seq),
        }
    }
}

/// The lost acknowledged writes' span, as sequence numbers (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossWindow {
    pub first: u64,
    pub last: u64,
}

impl LossWindow {
    /// Intended time of the earliest lost write, from the origin.
    pub fn start(&self, rate: f64) -> Duration {
        at(self.first, rate)
    }
    /// Intended time of the latest lost write, from the origin.
    pub fn end(&self, rate: f64) -> Duration {
        at(self.last, rate)
    }
    /// `end - start + one write interval`: each lost write stands for the interval that
    /// starts at its intended time, so one lost write is a window of one interval and a
    /// run of n consecutive lost writes is n intervals.
    pub fn duration(&self, rate: f64) -> Duration {
        at(self.last - self.first + 1, rate)
    }
}

fn at(k: u64, rate: f64) -> Duration {
    if rate <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(k as f64 / rate).unwrap_or(Duration::MAX)
}

/// The classification of one write probe's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    pub acknowledged: u64,
    pub lost: u64,
    pub unacknowledged_present: u64,
    /// Writes stored more than once.
    pub duplicated: u64,
    /// Writes first stored after a higher-numbered write.
    pub out_of_order: u64,
    pub loss_window: Option<LossWindow>,
}

/// Compare what was acknowledged with what the scan found.
pub fn classify(acked: &SeqSet, scan: &Scan) -> Findings {
    let mut f = Findings {
        acknowledged: 0,
        lost: 0,
        unacknowledged_present: 0,
        duplicated: scan.duplicated.len(),
        out_of_order: scan.out_of_order,
        loss_window: None,
    };
    for seq in 0..scan.scheduled {
        match (acked.contains(seq), scan.present.contains(seq)) {
            (true, true) => f.acknowledged += 1,
            (true, false) => {
                f.acknowledged += 1;
                f.lost += 1;
                let w = f.loss_window.get_or_insert(LossWindow {
                    first: seq,
                    last: seq,
                });
                w.last = seq;
            }
            (false, true) => f.unacknowledged_present += 1,
            (false, false) => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: impl IntoIterator<Item = u64>) -> SeqSet {
        let mut s = SeqSet::default();
        for k in members {
            s.insert(k);
        }
        s
    }

    #[test]
    fn lost_and_unacknowledged_present_from_per_key_reads() {
        // 0..10 scheduled; 0..8 acknowledged; 3 and 5 missing; 8 present unacknowledged.
        let acked = set(0..8);
        let mut scan = Scan::new(10);
        for k in [0, 1, 2, 4, 6, 7, 8, 12] {
            scan.found(k);
        }
        let f = classify(&acked, &scan);
        assert_eq!(f.acknowledged, 8);
        assert_eq!(f.lost, 2);
        assert_eq!(f.unacknowledged_present, 1);
        assert_eq!((f.duplicated, f.out_of_order), (0, 0));
        assert_eq!(f.loss_window, Some(LossWindow { first: 3, last: 5 }));
        assert_eq!(scan.ignored, 1, "12 was never scheduled");
    }

    #[test]
    fn duplicates_and_reordering_in_a_stored_log() {
        let acked = set(0..6);
        let mut scan = Scan::new(6);
        // 1 and 2 swapped; 3 replayed after 4; 5 missing.
        for k in [0, 2, 1, 3, 4, 3] {
            scan.stored(k);
        }
        let f = classify(&acked, &scan);
        assert_eq!(f.duplicated, 1);
        assert_eq!(
            f.out_of_order, 1,
            "the replayed 3 is a duplicate, not reordered"
        );
        assert_eq!(f.lost, 1);
        assert_eq!(f.loss_window, Some(LossWindow { first: 5, last: 5 }));
    }

    #[test]
    fn nothing_lost_means_no_window() {
        let acked = set(0..4);
        let mut scan = Scan::new(4);
        (0..4).for_each(|k| scan.stored(k));
        let f = classify(&acked, &scan);
        assert_eq!((f.lost, f.loss_window), (0, None));
    }

    #[test]
    fn window_math_counts_each_lost_write_as_one_interval() {
        let one = LossWindow {
            first: 10,
            last: 10,
        };
        assert_eq!(one.start(50.0), Duration::from_millis(200));
        assert_eq!(one.end(50.0), Duration::from_millis(200));
        assert_eq!(one.duration(50.0), Duration::from_millis(20));
        let span = LossWindow { first: 0, last: 99 };
        assert_eq!(span.end(50.0), Duration::from_millis(1980));
        assert_eq!(span.duration(50.0), Duration::from_secs(2));
        assert_eq!(span.duration(0.0), Duration::ZERO);
    }
}
