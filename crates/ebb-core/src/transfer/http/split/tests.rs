//! Cutting, stealing and when to split.

use super::*;

/// The bytes a split file has on disk: the sum of each split's.
fn transferred(splits: &[Split]) -> u64 {
    splits.iter().map(|s| s.next - s.start).sum()
}

fn file(total: u64, done: u64) -> JobFile {
    JobFile::reported(String::new(), "f".into(), Some(total), done, false)
}

#[test]
fn the_rest_is_cut_into_splits_that_cover_the_file() {
    let mut f = file(100 << 20, 10 << 20);
    cut(&mut f, 4);
    assert_eq!(f.splits.len(), 4);
    assert_eq!(f.splits[0].start, 0);
    assert_eq!(f.splits[0].next, 10 << 20);
    for w in f.splits.windows(2) {
        assert_eq!(w[0].end, w[1].start);
        assert_eq!(w[1].next, w[1].start);
    }
    assert_eq!(f.splits[3].end, 100 << 20);
    assert_eq!(transferred(&f.splits), 10 << 20);
}

#[test]
fn a_small_rest_is_not_cut() {
    let mut f = file(9 << 20, 2 << 20);
    cut(&mut f, 4);
    assert!(f.splits.is_empty(), "{:?}", f.splits);
    let mut f = file(12 << 20, 0);
    cut(&mut f, 8);
    assert_eq!(f.splits.len(), 3, "never below the smallest split");
}

#[test]
fn a_free_connection_takes_half_of_the_largest_split() {
    let mut splits = vec![
        Split {
            start: 0,
            next: 40 << 20,
            end: 40 << 20,
        },
        Split {
            start: 40 << 20,
            next: 50 << 20,
            end: 80 << 20,
        },
        Split {
            start: 80 << 20,
            next: 81 << 20,
            end: 90 << 20,
        },
    ];
    assert_eq!(steal(&mut splits), Some(3));
    assert_eq!(splits[1].end, 65 << 20);
    assert_eq!(
        splits[3],
        Split {
            start: 65 << 20,
            next: 65 << 20,
            end: 80 << 20
        }
    );
    splits[1].next = splits[1].end;
    splits[3].next = splits[3].end - (1 << 20);
    splits[2].next = splits[2].end - (3 << 19);
    assert_eq!(steal(&mut splits), None, "nothing left worth a connection");
}

#[test]
fn an_automatic_split_waits_for_proof_that_one_connection_is_slow() {
    let plan = Plan {
        n: 4,
        automatic: true,
        idle: false,
    };
    let began = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
    // 2 s for 1 MiB: the 100 MiB left would take minutes.
    assert!(plan.split_now(began, 1 << 20, 100 << 20, || false));
    // 2 s for 100 MiB: the 10 MiB left take a fraction of a second.
    assert!(!plan.split_now(began, 100 << 20, 10 << 20, || false));
    // Too early to tell.
    assert!(!plan.split_now(Instant::now(), 1 << 20, 100 << 20, || false));
    let asked = Plan {
        n: 4,
        automatic: false,
        idle: false,
    };
    assert!(asked.split_now(Instant::now(), 0, 100 << 20, || false));
    assert!(
        !asked.split_now(Instant::now(), 0, 5 << 20, || false),
        "too small to split"
    );
}

#[test]
fn a_background_split_waits_for_the_idle_control() {
    let plan = Plan {
        n: IDLE,
        automatic: true,
        idle: true,
    };
    let began = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
    // Slow, but the idle control says one connection takes what the link offers (others
    // use it, or ebb's limit binds): no split.
    assert!(!plan.split_now(began, 1 << 20, 100 << 20, || false));
    // One connection short of the idle link: split, at once.
    assert!(plan.split_now(Instant::now(), 0, 100 << 20, || true));
    // Too small to split: the offer is not even taken.
    assert!(!plan.split_now(began, 0, 5 << 20, || unreachable!()));
}
