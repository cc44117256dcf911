//! The figures ebb reads from a connection's `TCP_INFO` (Linux), and what a download received
//! between two readings.

/// One connection's figures from `TCP_INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpFigures {
    /// `tcpi_state` is `TCP_ESTABLISHED`.
    pub established: bool,
    pub bytes_received: u64,
    pub bytes_acked: u64,
    /// Smoothed RTT of what this socket sent (its own data or, for a download, little more than
    /// its ACKs), µs.
    pub rtt_us: u32,
    /// The receiver's RTT estimate, µs (0 when it has none).
    pub rcv_rtt_us: u32,
    /// The peer's segment size as this side sees it (`tcpi_rcv_mss`).
    pub rcv_mss: u32,
    /// The most window this side offers now (`tcpi_rcv_ssthresh`): no more than that can be
    /// held out of order.
    pub rcv_ssthresh: u32,
    /// Segments with data that arrived, in order or not (`tcpi_data_segs_in`, Linux 4.6);
    /// `None` from an older kernel.
    pub data_segs_in: Option<u32>,
}

/// What one connection has been counted for so far. A download's arrivals lie between its
/// in-order bytes and its segments times their size: the second where the connection carries
/// full segments, so that data held out of order behind a lost segment counts when it
/// arrives, not a round trip later when the hole is filled (on a lossy link that lag reads as
/// someone else's traffic); else at most a window beyond the first (a young connection with a
/// hole cannot yet show that its segments are full; a chatty server's short segments are
/// over-counted by no more than a window, once). The count never goes back: what was held back
/// counts once it is in sight again, and nothing counts twice.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counted {
    /// The figures at the last reading.
    last: TcpFigures,
    /// Segments with data since the connection opened, past the 32-bit counter's wrap.
    segs: u64,
    /// Bytes counted so far, on the same footing as `bytes_received`.
    arrived: u64,
}

impl Counted {
    /// A connection first seen with figures `f` that may be old: only what it does from now
    /// on counts.
    pub(crate) fn from_now(f: TcpFigures) -> Self {
        let mut c = Self {
            last: f,
            segs: f.data_segs_in.map_or(0, u64::from),
            arrived: 0,
        };
        c.arrived = c.estimate();
        c
    }

    /// Take a reading `f`; the payload bytes that arrived (downloads) or were acknowledged
    /// (uploads) since the last one.
    pub(crate) fn advance(&mut self, f: TcpFigures, upload: bool) -> u64 {
        let acked = f.bytes_acked.saturating_sub(self.last.bytes_acked);
        if let Some(segs) = f.data_segs_in {
            let before = self.last.data_segs_in.unwrap_or(0);
            self.segs += u64::from(segs.wrapping_sub(before));
        }
        self.last = f;
        if upload {
            return acked;
        }
        let now = self.estimate();
        let new = now.saturating_sub(self.arrived);
        self.arrived = self.arrived.max(now);
        new
    }

    /// What arrived so far: the segments times their size where the connection carries full
    /// segments, else up to a window more than what was received in order; never less.
    fn estimate(&self) -> u64 {
        let f = &self.last;
        let in_order = f.bytes_received;
        let mss = u64::from(f.rcv_mss);
        if f.data_segs_in.is_none() || mss == 0 {
            return in_order;
        }
        let segments = self.segs.saturating_mul(mss);
        let reach = if in_order as f64 >= FULL_SEGMENTS * segments as f64 {
            segments
        } else {
            segments.min(in_order.saturating_add(u64::from(f.rcv_ssthresh)))
        };
        in_order.max(reach)
    }
}

/// A connection whose bytes so far average at least this share of its segment size carries
/// full segments (a bulk transfer; duplicates and the odd short segment aside).
const FULL_SEGMENTS: f64 = 0.9;

/// `struct tcp_info` (`linux/tcp.h`) offsets of the fields read here; the kernel copies as much
/// as the buffer holds and it knows, and `bytes_received` (Linux 4.1) is the last one needed.
const TCP_ESTABLISHED: u8 = 1;
const RCV_MSS: usize = 20;
const RCV_SSTHRESH: usize = 64;
const RTT: usize = 68;
const RCV_RTT: usize = 92;
const BYTES_ACKED: usize = 120;
const BYTES_RECEIVED: usize = 128;
const DATA_SEGS_IN: usize = 152;
pub(crate) const TCP_INFO_LEN: usize = 156;

/// The figures in a `TCP_INFO` buffer; `None` if the kernel filled too little of it.
pub(crate) fn parse_tcp_info(buf: &[u8]) -> Option<TcpFigures> {
    let u32_at = |at: usize| Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?));
    Some(TcpFigures {
        established: *buf.first()? == TCP_ESTABLISHED,
        bytes_received: u64_at(BYTES_RECEIVED)?,
        bytes_acked: u64_at(BYTES_ACKED)?,
        rtt_us: u32_at(RTT)?,
        rcv_rtt_us: u32_at(RCV_RTT)?,
        rcv_mss: u32_at(RCV_MSS)?,
        rcv_ssthresh: u32_at(RCV_SSTHRESH)?,
        data_segs_in: u32_at(DATA_SEGS_IN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_fields_at_their_offsets() {
        let mut buf = vec![0u8; TCP_INFO_LEN];
        buf[0] = TCP_ESTABLISHED;
        buf[RTT..RTT + 4].copy_from_slice(&20_500u32.to_ne_bytes());
        buf[RCV_RTT..RCV_RTT + 4].copy_from_slice(&21_000u32.to_ne_bytes());
        buf[BYTES_ACKED..BYTES_ACKED + 8].copy_from_slice(&77u64.to_ne_bytes());
        buf[BYTES_RECEIVED..BYTES_RECEIVED + 8].copy_from_slice(&(5u64 << 32).to_ne_bytes());
        buf[RCV_MSS..RCV_MSS + 4].copy_from_slice(&1448u32.to_ne_bytes());
        buf[RCV_SSTHRESH..RCV_SSTHRESH + 4].copy_from_slice(&65_535u32.to_ne_bytes());
        buf[DATA_SEGS_IN..DATA_SEGS_IN + 4].copy_from_slice(&9u32.to_ne_bytes());
        let f = parse_tcp_info(&buf).unwrap();
        assert_eq!(
            f,
            TcpFigures {
                established: true,
                bytes_received: 5 << 32,
                bytes_acked: 77,
                rtt_us: 20_500,
                rcv_rtt_us: 21_000,
                rcv_mss: 1448,
                rcv_ssthresh: 65_535,
                data_segs_in: Some(9),
            }
        );
        // A kernel before 4.6: no segment count; and before 4.1, no figures rather than wrong
        // ones.
        assert_eq!(parse_tcp_info(&buf[..136]).unwrap().data_segs_in, None);
        assert_eq!(parse_tcp_info(&buf[..104]), None);
    }

    #[test]
    fn a_download_counts_segments_as_they_arrive_out_of_order_or_not() {
        let fig = |rx: u64, segs: Option<u32>| TcpFigures {
            bytes_received: rx,
            rcv_mss: 1000,
            data_segs_in: segs,
            ..TcpFigures::default()
        };
        let mut c = Counted::default();
        // 100 full segments in order, then 10 more arrive behind a hole: they count now.
        assert_eq!(c.advance(fig(100_000, Some(100)), false), 100_000);
        assert_eq!(c.advance(fig(100_000, Some(110)), false), 10_000);
        // The hole is filled: one segment, though 11 became readable.
        assert_eq!(c.advance(fig(111_000, Some(111)), false), 1_000);
        // Short segments (a chatty server): what was read in order, not segments x size.
        let mut c = Counted::from_now(fig(2_000, Some(20)));
        assert_eq!(c.advance(fig(5_000, Some(60)), false), 3_000);
        // No segment count (old kernel): in order.
        let mut c = Counted::from_now(fig(2_000, None));
        assert_eq!(c.advance(fig(7_000, None), false), 5_000);
        // The counter wraps.
        let mut c = Counted::from_now(fig(1 << 40, Some(u32::MAX)));
        assert_eq!(c.advance(fig((1 << 40) + 2_000, Some(1)), false), 2_000);
    }

    #[test]
    fn a_young_connection_on_a_lossy_path_counts_every_segment_once() {
        let fig = |rx: u64, segs: u32, window: u32| TcpFigures {
            bytes_received: rx,
            rcv_mss: 1000,
            rcv_ssthresh: window,
            data_segs_in: Some(segs),
            ..TcpFigures::default()
        };
        let mut c = Counted::default();
        // Young, a third of what arrived held behind a hole: too little in order to show
        // full segments, but the hole is less than a window, so the segments count.
        assert_eq!(c.advance(fig(20_000, 30, 64_000), false), 30_000);
        // Filled, and 80 more.
        assert_eq!(c.advance(fig(100_000, 110, 64_000), false), 80_000);
        // A window so small that the 30 behind a new hole are past it: only what it could
        // hold counts, the rest once it is in sight.
        assert_eq!(c.advance(fig(100_000, 140, 16_000), false), 6_000);
        assert_eq!(c.advance(fig(141_000, 141, 16_000), false), 25_000);
        assert_eq!(c.arrived, 141_000);
        // Counted in order through the hole (no window known): the segments held back count
        // when it is filled, none twice, none lost.
        let mut c = Counted::default();
        assert_eq!(c.advance(fig(20_000, 30, 0), false), 20_000);
        assert_eq!(c.advance(fig(100_000, 110, 0), false), 90_000);
        assert_eq!(c.advance(fig(100_000, 140, 0), false), 0);
        assert_eq!(c.advance(fig(141_000, 141, 0), false), 31_000);
        // A chatty server's short segments: at most a window more than what was in order,
        // once; then what arrives in order.
        let mut c = Counted::default();
        assert_eq!(c.advance(fig(2_000, 20, 4_000), false), 6_000);
        assert_eq!(c.advance(fig(5_000, 60, 4_000), false), 3_000);
        // An upload counts what was acknowledged.
        let up = |acked: u64| TcpFigures {
            bytes_acked: acked,
            ..TcpFigures::default()
        };
        let mut c = Counted::from_now(up(5_000));
        assert_eq!(c.advance(up(9_000), true), 4_000);
    }
}
