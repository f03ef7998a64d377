//! A growable bitset of sequence numbers: which writes were acknowledged, which were
//! found. One bit per scheduled write, so an hour at 1k/s is 450 KiB, not a Vec of samples.

/// Set of sequence numbers, dense from 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Add `k`; returns false when it was already there.
    pub fn insert(&mut self, k: u64) -> bool {
        let (word, bit) = ((k / 64) as usize, k % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        let had = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        !had
    }

    pub fn contains(&self, k: u64) -> bool {
        self.words
            .get((k / 64) as usize)
            .is_some_and(|w| w & (1 << (k % 64)) != 0)
    }

    /// Number of members.
    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64u64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i as u64 * 64 + b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_in_order_and_counted_once() {
        let mut s = SeqSet::default();
        assert!(s.is_empty());
        for k in [5, 64, 0, 200, 5] {
            s.insert(k);
        }
        assert!(!s.insert(64));
        assert_eq!(s.len(), 4);
        assert!(s.contains(200) && !s.contains(199) && !s.contains(1_000_000));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 5, 64, 200]);
    }
}
