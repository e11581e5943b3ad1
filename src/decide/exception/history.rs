//! The exception's own record of what happened to it (`status.history`),
//! for an auditor asking about a ticket after the Events (kept an hour by
//! default) are gone: one entry per transition, and one when it starts
//! expiring soon; the oldest drop off beyond the limit.

use jiff::Timestamp;

use crate::api::{HistoryEntry, PolicyExceptionStatus, limits};
use crate::decide::conditions::{is_true, reasons, types};
use crate::decide::notice::Notice;
use crate::decide::time;

/// The history after this decision: `previous`'s, plus the transition
/// `event` (if any) and ExpiringSoon turning on, at `now`.
pub fn recorded(
    previous: &PolicyExceptionStatus,
    status: &PolicyExceptionStatus,
    event: Option<&Notice>,
    now: Timestamp,
) -> Vec<HistoryEntry> {
    let mut history = previous.history.clone();
    if let Some(e) = event {
        append(&mut history, now, e.reason, &e.note);
    }
    let soon = types::EXPIRING_SOON;
    if is_true(&status.conditions, soon) && !is_true(&previous.conditions, soon) {
        let note = status
            .expires_at
            .as_deref()
            .map(|t| format!("expires at {t}"))
            .unwrap_or_default();
        append(&mut history, now, reasons::EXPIRING_SOON, &note);
    }
    history
}

/// Appends one entry at `now`; the oldest drop off beyond the limit.
pub fn append(history: &mut Vec<HistoryEntry>, now: Timestamp, reason: &str, note: &str) {
    history.push(HistoryEntry {
        time: time::format(now),
        reason: reason.to_string(),
        message: note.chars().take(limits::SENTENCE).collect(),
    });
    let excess = history.len().saturating_sub(limits::HISTORY);
    history.drain(..excess);
}

#[cfg(test)]
mod tests {
    use crate::api::Phase;
    use crate::decide::exception::decide;
    use crate::decide::fixtures::{ceiling, control, exception, ts};

    /// The fixture's window: 2026-11-28T10:00Z to 2026-11-29T10:00Z,
    /// expiring soon from 05:12Z on the 29th.
    #[test]
    fn each_transition_once_in_order_and_nothing_when_nothing_changes() {
        let (mut pe, co, c) = (exception(), control(), ceiling());
        let mut reasons = Vec::new();
        for now in [
            "2026-11-28T09:00:00Z",
            "2026-11-28T10:00:00Z",
            "2026-11-28T12:00:00Z",
            "2026-11-29T06:00:00Z",
            "2026-11-29T07:00:00Z",
            "2026-11-29T10:00:00Z",
            "2026-11-30T00:00:00Z",
        ] {
            let d = decide(
                &pe,
                Some(&co),
                &c,
                crate::decide::approval::Trust::AssumeApproved,
                ts(now),
            );
            pe.status = Some(d.status);
            reasons = pe
                .status
                .as_ref()
                .unwrap()
                .history
                .iter()
                .map(|h| h.reason.clone())
                .collect();
        }
        assert_eq!(reasons, ["Pending", "Granted", "ExpiringSoon", "Expired"]);
        let history = &pe.status.as_ref().unwrap().history;
        assert_eq!(history[1].time, "2026-11-28T10:00:00Z");
        assert_eq!(pe.status.as_ref().unwrap().phase, Some(Phase::Expired));
    }

    #[test]
    fn the_oldest_drop_off_beyond_the_limit() {
        let (mut pe, co, c) = (exception(), control(), ceiling());
        let d = decide(
            &pe,
            Some(&co),
            &c,
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-28T09:00:00Z"),
        );
        let mut status = d.status;
        status.history = (0..crate::api::limits::HISTORY)
            .map(|i| crate::api::HistoryEntry {
                time: format!("t{i}"),
                reason: "Pending".into(),
                message: String::new(),
            })
            .collect();
        status.phase = Some(Phase::Pending);
        pe.status = Some(status);
        let d = decide(
            &pe,
            Some(&co),
            &c,
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-28T10:00:00Z"),
        );
        assert_eq!(d.status.history.len(), crate::api::limits::HISTORY);
        assert_eq!(d.status.history[0].time, "t1");
        assert_eq!(d.status.history.last().map(|h| h.reason.as_str()), Some("Granted"));
    }
}
