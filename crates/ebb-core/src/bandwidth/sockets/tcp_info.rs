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
    /// Segments with data that arrived, in order or not (`tcpi_data_segs_in`, Linux 4.6);
    /// `None` from an older kernel.
    pub data_segs_in: Option<u32>,
}

impl TcpFigures {
    /// Payload bytes a download received from `before` to now, as they arrived: segments
    /// times their size where the connection carries full segments, so that data held out of
    /// order behind a lost segment counts when it arrives, not a round trip later when the
    /// hole is filled (on a lossy link that lag reads as someone else's traffic). Else the
    /// in-order bytes.
    pub(crate) fn arrived_since(&self, before: &TcpFigures) -> u64 {
        let in_order = self.bytes_received.saturating_sub(before.bytes_received);
        let Some(segs) = self.data_segs_in else {
            return in_order;
        };
        let segs_before = before.data_segs_in.unwrap_or(0);
        let mss = u64::from(self.rcv_mss);
        let full =
            mss > 0 && self.bytes_received as f64 >= FULL_SEGMENTS * f64::from(segs) * mss as f64;
        if full {
            u64::from(segs.wrapping_sub(segs_before)) * mss
        } else {
            in_order
        }
    }
}

/// A connection whose bytes so far average at least this share of its segment size carries
/// full segments (a bulk transfer; duplicates and the odd short segment aside).
const FULL_SEGMENTS: f64 = 0.9;

/// `struct tcp_info` (`linux/tcp.h`) offsets of the fields read here; the kernel copies as much
/// as the buffer holds and it knows, and `bytes_received` (Linux 4.1) is the last one needed.
const TCP_ESTABLISHED: u8 = 1;
const RCV_MSS: usize = 20;
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
        // 100 full segments in order, then 10 more arrive behind a hole: they count now.
        let before = fig(100_000, Some(100));
        assert_eq!(fig(100_000, Some(110)).arrived_since(&before), 10_000);
        // The hole is filled: one segment, though 11 became readable.
        let held = fig(100_000, Some(110));
        assert_eq!(fig(111_000, Some(111)).arrived_since(&held), 1_000);
        // Short segments (a chatty server): what was read in order, not segments x size.
        assert_eq!(
            fig(5_000, Some(60)).arrived_since(&fig(2_000, Some(20))),
            3_000
        );
        // No segment count (old kernel): in order.
        assert_eq!(fig(7_000, None).arrived_since(&fig(2_000, None)), 5_000);
        // The counter wraps.
        let wrap = fig(1 << 40, Some(u32::MAX));
        assert_eq!(fig((1 << 40) + 2_000, Some(1)).arrived_since(&wrap), 2_000);
    }
}
