//! Where a file's next bytes come from: the whole remote file, or the next of its byte ranges.

use crate::model::JobFile;

/// The remote bytes to ask for next: `[start, end)`, `end = None` reading to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub start: u64,
    pub end: Option<u64>,
}

/// The length of each range, where known. The one range that may read to EOF is resolved from
/// the remote size, or from the stored total once that was learnt.
fn lengths(file: &JobFile, remote_size: Option<u64>) -> Vec<Option<u64>> {
    let known: u64 = file.ranges.iter().filter_map(|r| r.length).sum();
    file.ranges
        .iter()
        .map(|r| {
            r.length.or_else(|| match remote_size {
                Some(size) => Some(size.saturating_sub(r.offset)),
                None => file.bytes_total.map(|t| t.saturating_sub(known)),
            })
        })
        .collect()
}

/// The next segment to fetch, or `None` when the file is complete.
pub(crate) fn next(file: &JobFile, remote_size: Option<u64>) -> Option<Segment> {
    if file.ranges.is_empty() {
        let done = file
            .bytes_total
            .is_some_and(|t| file.bytes_transferred >= t);
        return (!done).then_some(Segment {
            start: file.bytes_transferred,
            end: file.bytes_total,
        });
    }
    let mut pos = file.bytes_transferred;
    for (range, len) in file.ranges.iter().zip(lengths(file, remote_size)) {
        match len {
            None => {
                return Some(Segment {
                    start: range.offset + pos,
                    end: None,
                });
            }
            Some(len) if pos < len => {
                return Some(Segment {
                    start: range.offset + pos,
                    end: Some(range.offset + len),
                });
            }
            Some(len) => pos -= len,
        }
    }
    None
}

/// The file's total (the sum of its ranges) once every length is known.
pub(crate) fn total(file: &JobFile, remote_size: Option<u64>) -> Option<u64> {
    if file.ranges.is_empty() {
        return remote_size.or(file.bytes_total);
    }
    lengths(file, remote_size).into_iter().sum()
}

/// The first range that does not fit in a remote file of `size` bytes.
pub(crate) fn out_of_bounds(file: &JobFile, size: u64) -> Option<String> {
    file.ranges.iter().find_map(|r| {
        let bad = r.offset > size || r.end().is_some_and(|end| end > size);
        bad.then(|| {
            format!(
                "(range {}:{} of a {size}-byte file)",
                r.offset,
                r.length.map_or_else(|| "eof".into(), |l| l.to_string())
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ByteRange, JobId, NewFile};

    fn file(ranges: &str) -> JobFile {
        let mut f = NewFile::new("http://h/x", "/tmp/x");
        if !ranges.is_empty() {
            f = f.with_ranges(ByteRange::parse_list(ranges).unwrap());
        }
        JobFile::new(JobId::new(), 0, f)
    }

    #[test]
    fn whole_file_resumes_at_progress() {
        let mut f = file("");
        assert_eq!(
            next(&f, None),
            Some(Segment {
                start: 0,
                end: None
            })
        );
        f.bytes_total = Some(100);
        f.bytes_transferred = 40;
        assert_eq!(
            next(&f, None),
            Some(Segment {
                start: 40,
                end: Some(100)
            })
        );
        f.bytes_transferred = 100;
        assert_eq!(next(&f, None), None);
    }

    #[test]
    fn ranges_are_walked_in_order() {
        let mut f = file("10:5,100:eof");
        assert_eq!(
            next(&f, None),
            Some(Segment {
                start: 10,
                end: Some(15)
            })
        );
        f.bytes_transferred = 5;
        assert_eq!(
            next(&f, None),
            Some(Segment {
                start: 100,
                end: None
            })
        );
        assert_eq!(
            next(&f, Some(150)),
            Some(Segment {
                start: 100,
                end: Some(150)
            })
        );
        assert_eq!(total(&f, Some(150)), Some(55));
        f.bytes_total = Some(55);
        f.bytes_transferred = 30;
        assert_eq!(
            next(&f, None),
            Some(Segment {
                start: 125,
                end: Some(150)
            })
        );
        f.bytes_transferred = 55;
        assert_eq!(next(&f, None), None);
        assert!(out_of_bounds(&f, 150).is_none());
        assert!(out_of_bounds(&f, 12).is_some());
    }
}
