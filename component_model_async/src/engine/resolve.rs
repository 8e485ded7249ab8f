//! The resolve stage: the order fields can be fetched in. A field waits for the fields it
//! reads (`Plan::after`); fields that wait for nothing are fetched in the first wave, and
//! each later wave holds the fields whose inputs earlier waves fetched. Without any
//! dependency (every plan the derive makes today) there is one wave and nothing is
//! allocated for it.

use super::slot::Slot;

/// The waves of a run: every field at once, or fields in dependency order.
pub(super) enum Waves {
    /// One wave of every field.
    One,
    /// Waves of field indices, each after the ones before it; the fields of a cycle
    /// come last, in `cycle`.
    Ordered {
        waves: Vec<Vec<usize>>,
        cycle: Vec<usize>,
    },
}

impl Waves {
    /// The fields in `0..n` of wave `i`, or `None` past the last wave.
    pub(super) fn wave(&self, i: usize, n: usize) -> Option<Wave<'_>> {
        match self {
            Waves::One => (i == 0).then_some(Wave::All(n)),
            Waves::Ordered { waves, .. } => waves.get(i).map(|w| Wave::Some(w)),
        }
    }

    /// Fields that wait for each other in a cycle: never fetched.
    pub(super) fn cycle(&self) -> &[usize] {
        match self {
            Waves::One => &[],
            Waves::Ordered { cycle, .. } => cycle,
        }
    }
}

/// The fields of one wave: every field (nothing allocated), or some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wave<'w> {
    /// Fields `0..n`.
    All(usize),
    Some(&'w [usize]),
}

impl Wave<'_> {
    /// The field indices of the wave.
    pub(super) fn iter(self) -> impl Iterator<Item = usize> {
        let (all, some) = match self {
            Wave::All(n) => (0..n, &[][..]),
            Wave::Some(w) => (0..0, w),
        };
        all.chain(some.iter().copied())
    }

    pub(super) fn len(self) -> usize {
        match self {
            Wave::All(n) => n,
            Wave::Some(w) => w.len(),
        }
    }
}

/// Orders `slots` into waves by their `after` lists (Kahn's algorithm, by levels).
pub(super) fn waves(slots: &[Slot]) -> Waves {
    if slots.iter().all(|s| s.after.is_empty()) {
        return Waves::One;
    }
    let n = slots.len();
    let mut pending: Vec<usize> = slots.iter().map(|s| s.after.len()).collect();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, slot) in slots.iter().enumerate() {
        for &dep in &slot.after {
            readers[dep].push(i);
        }
    }
    let mut waves = Vec::new();
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut placed = 0;
    while !ready.is_empty() {
        placed += ready.len();
        let mut next = Vec::new();
        for &i in &ready {
            for &r in &readers[i] {
                pending[r] -= 1;
                if pending[r] == 0 {
                    next.push(r);
                }
            }
        }
        next.sort_unstable();
        waves.push(std::mem::replace(&mut ready, next));
    }
    let cycle = if placed < n {
        (0..n).filter(|&i| pending[i] > 0).collect()
    } else {
        Vec::new()
    };
    Waves::Ordered { waves, cycle }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FieldSpec;

    static SPEC: FieldSpec = FieldSpec::new("S", "f", "u8", "mem");

    fn slots(after: &[&[usize]]) -> Vec<Slot> {
        after
            .iter()
            .map(|a| Slot {
                spec: &SPEC,
                owner: "S",
                field: "f".into(),
                source: None,
                sensitive: false,
                request: None,
                primary: None,
                fallback: None,
                fallback_request: None,
                decoders: None,
                after: a.to_vec(),
                precedence: None,
            })
            .collect()
    }

    #[test]
    fn without_dependencies_there_is_one_wave_of_every_field() {
        let w = waves(&slots(&[&[], &[], &[]]));
        assert_eq!(
            w.wave(0, 3).map(|w| w.iter().collect::<Vec<_>>()),
            Some(vec![0, 1, 2])
        );
        assert_eq!(w.wave(1, 3), None);
    }

    #[test]
    fn a_field_comes_in_the_wave_after_the_last_field_it_reads() {
        // 0 <- 2 <- 3, 1 free, 4 reads 1 and 3.
        let w = waves(&slots(&[&[], &[], &[0], &[2], &[1, 3]]));
        assert_eq!(w.wave(0, 5), Some(Wave::Some(&[0, 1])));
        assert_eq!(w.wave(1, 5), Some(Wave::Some(&[2])));
        assert_eq!(w.wave(2, 5), Some(Wave::Some(&[3])));
        assert_eq!(w.wave(3, 5), Some(Wave::Some(&[4])));
        assert_eq!(w.wave(4, 5), None);
        assert!(w.cycle().is_empty());
    }

    #[test]
    fn fields_waiting_for_each_other_are_named_as_a_cycle() {
        let w = waves(&slots(&[&[], &[2], &[1], &[2]]));
        assert_eq!(w.wave(0, 4), Some(Wave::Some(&[0])));
        assert_eq!(w.wave(1, 4), None);
        assert_eq!(w.cycle(), &[1, 2, 3]);
    }
}
