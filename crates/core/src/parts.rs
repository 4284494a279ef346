//! Where a large plain file is cut so that several scorers read it at once — the CLI's
//! threads, the app's helper workers, one plan for both. The scorer that owns the file
//! reads a head first (to learn the format and framing), then the rest is cut into
//! line-aligned parts, each scored by a range scorer and absorbed in file order
//! ([`crate::dataset::Scorer::range_scorer`], [`crate::dataset::Scorer::absorb`]), so the
//! result equals one scorer reading the whole file.
//!
//! The planner only does arithmetic: finding a line end in the file is the caller's (a
//! `pread` natively, a Blob slice in the browser).

/// Files smaller than this are read by one scorer: below it, starting the others costs
/// more than it saves.
pub const PARALLEL_MIN_BYTES: u64 = 64 << 20;
/// What the owning scorer reads first, on its own.
pub const HEAD_BYTES: u64 = 4 << 20;
/// Parts per scorer: several, so that one slow part does not leave the others idle.
pub const PARTS_PER_SCORER: u64 = 4;
/// The smallest part: a part's fixed cost (a range scorer, a message) stays small beside
/// its work.
pub const MIN_PART_BYTES: u64 = 16 << 20;

/// Whether a plain (not compressed) file of `size` bytes is worth cutting for `scorers`
/// scorers.
pub fn worth_splitting(size: u64, scorers: usize) -> bool {
    scorers > 1 && size >= PARALLEL_MIN_BYTES
}

/// Where the head ends: just past its last line end, or None when it has none (one huge
/// line, or not line-framed): such a file is streamed by one scorer.
pub fn head_end(head: &[u8]) -> Option<u64> {
    memchr::memrchr(b'\n', head).map(|newline| newline as u64 + 1)
}

/// One part: bytes `start..end` of the file, starting at a line start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub start: u64,
    pub end: u64,
}

/// The parts of a file of `size` bytes after its head, for `scorers` scorers.
/// `next_line_start(offset)` gives the first line start at or after `offset` (None if
/// there is none); each part starts at the line start at or after its cut.
/// Parts are contiguous, cover `head_end..size`, and none is empty.
pub fn plan<E>(
    head_end: u64,
    size: u64,
    scorers: usize,
    mut next_line_start: impl FnMut(u64) -> Result<Option<u64>, E>,
) -> Result<Vec<Part>, E> {
    let n_parts = (scorers.max(1) as u64).saturating_mul(PARTS_PER_SCORER);
    let share = size
        .saturating_sub(head_end)
        .div_ceil(n_parts)
        .max(MIN_PART_BYTES);
    let mut starts = vec![head_end];
    while let Some(&last) = starts.last() {
        let cut = last.saturating_add(share);
        if cut >= size {
            break;
        }
        match next_line_start(cut)? {
            Some(start) if start < size && start > last => starts.push(start),
            _ => break,
        }
    }
    let ends = starts.iter().skip(1).copied().chain(std::iter::once(size));
    Ok(starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| Part { start, end })
        .filter(|part| part.end > part.start)
        .collect())
}

#[cfg(test)]
mod tests {
    // A panic here is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// Line starts of a file whose lines are all `line` bytes long.
    fn fixed_lines(line: u64, size: u64) -> impl FnMut(u64) -> Result<Option<u64>, ()> {
        move |offset| {
            let start = offset.div_ceil(line).max(1) * line;
            Ok((start <= size).then_some(start))
        }
    }

    #[test]
    fn a_small_file_is_not_split_and_one_scorer_never_splits() {
        assert!(!worth_splitting(PARALLEL_MIN_BYTES - 1, 8));
        assert!(!worth_splitting(1 << 40, 1));
        assert!(worth_splitting(PARALLEL_MIN_BYTES, 2));
    }

    #[test]
    fn the_head_ends_after_its_last_line_end() {
        assert_eq!(head_end(b"a\nbb\nccc"), Some(5));
        assert_eq!(head_end(b"no line end"), None);
    }

    #[test]
    fn parts_start_at_line_starts_and_cover_the_rest_of_the_file() {
        let size = 1_000 << 20;
        let parts = plan(4 << 20, size, 4, fixed_lines(1_000, size)).unwrap();
        assert_eq!(parts.len(), 16);
        assert_eq!(parts.first().unwrap().start, 4 << 20);
        assert_eq!(parts.last().unwrap().end, size);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
            assert_eq!(pair[1].start % 1_000, 0);
        }
    }

    #[test]
    fn a_file_without_line_ends_past_the_head_is_one_part() {
        let parts = plan(10, 200 << 20, 4, |_| Ok::<_, ()>(None)).unwrap();
        assert_eq!(
            parts,
            vec![Part {
                start: 10,
                end: 200 << 20
            }]
        );
    }

    proptest! {
        #[test]
        fn parts_are_contiguous_non_empty_and_no_smaller_than_the_minimum_but_the_last(
            head in 1u64..(8 << 20),
            extra in 0u64..(2_000 << 20),
            line in 1u64..(3 << 20),
            scorers in 1usize..16,
        ) {
            let size = head + extra;
            let parts = plan(head, size, scorers, fixed_lines(line, size)).unwrap();
            let mut at = head;
            for (idx, part) in parts.iter().enumerate() {
                prop_assert_eq!(part.start, at);
                prop_assert!(part.end > part.start);
                if idx + 1 < parts.len() {
                    prop_assert!(part.end - part.start >= MIN_PART_BYTES);
                }
                at = part.end;
            }
            prop_assert_eq!(at, if extra == 0 { head } else { size });
        }
    }
}
