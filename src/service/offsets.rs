//! Which input offset is safe to store, per partition (design §7, at-least-once). No IO.
//!
//! An input record at offset `o` is *done* when every effect it caused has been
//! acknowledged by the broker: its signals, its dead-letter copy, and the changelog write
//! that covers the state it changed. The committed position of a partition may only move
//! past `o` when `o` and every record before it are done, so a crash at any moment
//! replays from a point where nothing was lost.
//!
//! Two things hold a partition back:
//! - `pending`: records whose signal/dead-letter deliveries are still outstanding, in
//!   offset order (records with no such effects are never entered, which keeps the
//!   queue short: most events change state but emit no signal);
//! - `covered`: the position up to which the state changelog is durable. State is
//!   written in periodic batches; a batch covers everything processed before it was
//!   taken, and only once all of its records are acknowledged does `covered` advance.
//!
//! The safe position is the lower of the two.

use std::collections::VecDeque;

/// Offset bookkeeping for one assigned input partition.
#[derive(Debug, Clone)]
pub struct PartitionTrack {
    /// (offset, outstanding deliveries) of records with unacknowledged effects.
    pending: VecDeque<(i64, u32)>,
    /// Offset after the last record processed (the consumer's position).
    next: i64,
    /// Offset after the last record whose state is durable in the changelog.
    covered: i64,
    /// Last position handed to the consumer's offset store.
    stored: i64,
    /// Acknowledgements for the record still being processed, before its `processed`
    /// call: its effects are sent one at a time, and while the producer queue is full
    /// the pipeline applies acknowledgements between two sends. Dropped, they would
    /// leave the record waiting for ever, and every partition's commits behind it.
    early: Option<(i64, u32)>,
}

impl PartitionTrack {
    /// Starts tracking at `first_offset`, the first record consumed after assignment:
    /// everything before it was committed by a previous owner (or never existed).
    pub fn new(first_offset: i64) -> Self {
        PartitionTrack {
            pending: VecDeque::new(),
            next: first_offset,
            covered: first_offset,
            stored: first_offset,
            early: None,
        }
    }

    /// Records that the record at `offset` was processed and caused `outstanding`
    /// deliveries that are not acknowledged yet. Offsets arrive in increasing order.
    pub fn processed(&mut self, offset: i64, outstanding: u32) {
        let early = match self.early.take() {
            Some((o, n)) if o == offset => n,
            _ => 0,
        };
        let outstanding = outstanding.saturating_sub(early);
        if outstanding > 0 {
            self.pending.push_back((offset, outstanding));
        }
        self.next = self.next.max(offset + 1);
    }

    /// One delivery caused by the record at `offset` was acknowledged.
    pub fn ack(&mut self, offset: i64) {
        if offset >= self.next {
            // The record is still being processed (see `early`).
            match &mut self.early {
                Some((o, n)) if *o == offset => *n += 1,
                early => *early = Some((offset, 1)),
            }
            return;
        }
        if let Ok(i) = self.pending.binary_search_by_key(&offset, |&(o, _)| o) {
            let entry = &mut self.pending[i].1;
            *entry = entry.saturating_sub(1);
        }
        // Done records at the front no longer hold anything back.
        while matches!(self.pending.front(), Some(&(_, 0))) {
            self.pending.pop_front();
        }
    }

    /// The consumer position now: what a state batch taken now will cover.
    pub fn next(&self) -> i64 {
        self.next
    }

    /// True when every record before `barrier` has its deliveries acknowledged, so a
    /// state batch covering up to `barrier` may be written. Writing state only after the
    /// signals it reflects are durable means a restored state never claims an event whose
    /// signal was lost.
    pub fn effects_done_before(&self, barrier: i64) -> bool {
        self.pending.front().map_or(true, |&(o, _)| o >= barrier)
    }

    /// The changelog is durable for everything before `position`.
    pub fn state_covered(&mut self, position: i64) {
        self.covered = self.covered.max(position);
    }

    /// The highest position that may be stored: no record before it has outstanding
    /// effects, and its state is in the changelog.
    pub fn safe(&self) -> i64 {
        let effects = self.pending.front().map_or(self.next, |&(o, _)| o);
        effects.min(self.covered)
    }

    /// Returns the safe position if it moved since the last call, for the offset store.
    pub fn take_storable(&mut self) -> Option<i64> {
        let safe = self.safe();
        if safe > self.stored {
            self.stored = safe;
            Some(safe)
        } else {
            None
        }
    }

    /// True when nothing processed is waiting for any acknowledgement.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty() && self.covered >= self.next
    }

    /// Records with outstanding deliveries (a gauge of in-flight work).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_before_its_record_is_processed_is_not_lost() {
        // Regression: the pipeline applies acknowledgements while it waits for room in
        // a full producer queue, possibly between two effects of the record it is
        // processing. That record was not pending yet, the ack was dropped, and the
        // partition waited for it for ever.
        let mut t = PartitionTrack::new(0);
        t.ack(0);
        t.processed(0, 2);
        assert_eq!(t.safe(), 0, "one effect is still outstanding");
        t.ack(0);
        t.state_covered(1);
        assert_eq!(t.safe(), 1);
        // An early ack of a record processed with no effect left is nothing pending.
        t.ack(1);
        t.processed(1, 1);
        t.state_covered(2);
        assert_eq!(t.safe(), 2);
        assert!(t.is_settled());
    }

    #[test]
    fn nothing_is_safe_before_state_is_covered() {
        let mut t = PartitionTrack::new(10);
        t.processed(10, 0);
        t.processed(11, 0);
        assert_eq!(t.safe(), 10, "state for 10 and 11 not durable yet");
        t.state_covered(12);
        assert_eq!(t.safe(), 12);
        assert_eq!(t.take_storable(), Some(12));
        assert_eq!(t.take_storable(), None, "only reported when it moves");
    }

    #[test]
    fn an_unacknowledged_signal_holds_back_later_records() {
        let mut t = PartitionTrack::new(0);
        t.processed(0, 1);
        t.processed(1, 2);
        t.processed(2, 0);
        t.state_covered(3);
        assert_eq!(t.safe(), 0);
        t.ack(1);
        t.ack(1);
        assert_eq!(t.safe(), 0, "record 0 still outstanding");
        t.ack(0);
        assert_eq!(t.safe(), 3);
        assert!(t.is_settled());
    }

    #[test]
    fn state_barrier_waits_for_earlier_effects_only() {
        let mut t = PartitionTrack::new(0);
        t.processed(0, 1);
        assert!(!t.effects_done_before(1));
        assert!(t.effects_done_before(0));
        t.processed(5, 1);
        t.ack(0);
        assert!(t.effects_done_before(5));
        assert!(!t.effects_done_before(6));
    }

    #[test]
    fn acks_for_unknown_offsets_are_ignored() {
        let mut t = PartitionTrack::new(0);
        t.processed(0, 1);
        t.ack(7);
        assert_eq!(t.pending_len(), 1);
    }

    #[test]
    fn coverage_never_moves_back() {
        let mut t = PartitionTrack::new(0);
        t.processed(0, 0);
        t.state_covered(1);
        t.state_covered(0);
        assert_eq!(t.safe(), 1);
    }
}
