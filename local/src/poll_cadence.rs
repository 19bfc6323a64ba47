//! When a Pipe's shard reader polls and when it invokes, as Lambda's Kinesis poller does:
//! pure decisions over a clock reading, so they are tested without waiting.
//!
//! A caught-up shard (its last GetRecords returned nothing, nothing is behind and nothing
//! is buffered) is polled again after [`Cadence::idle_poll`], once a second by default; any
//! other shard as soon as Kinesis' read limit allows, [`Cadence::min_poll_interval`] after
//! its last poll (5 per second). Buffered records are invoked as a batch once there are
//! `batch_size` of them, once the batching window has passed since the first, or once the
//! shard is read to its end.

use std::time::{Duration, Instant};

/// A shard reader's pacing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Most records per invocation (`BatchSize`).
    pub batch_size: usize,
    /// How long a partial batch may gather (`MaximumBatchingWindowInSeconds`).
    pub window: Duration,
    /// The wait after a poll that found the shard caught up.
    pub idle_poll: Duration,
    /// The shortest time between two polls of the shard.
    pub min_poll_interval: Duration,
}

/// Where a shard reader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Records read and not yet invoked.
    pub buffered: usize,
    /// When the oldest of them was buffered.
    pub first_buffered: Option<Instant>,
    /// The shard has more to read (false once a closed shard is read to its end).
    pub open: bool,
    /// The earliest moment the next poll may go out.
    pub next_poll: Instant,
}

/// What a shard reader does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Invoke the target with the next batch of the buffer.
    Deliver,
    /// Read to its end and every record delivered: record the shard as finished.
    Finish,
    /// Nothing to do until then (the next poll, or the batching window's end).
    WaitUntil(Instant),
    /// Call GetRecords now.
    Poll,
}

impl Cadence {
    /// The reader's next step at `now`.
    pub fn step(&self, now: Instant, reading: &Reading) -> Step {
        let window_over = reading
            .first_buffered
            .is_some_and(|t| now.saturating_duration_since(t) >= self.window);
        let has_records = reading.buffered > 0;
        if reading.buffered >= self.batch_size || (has_records && (window_over || !reading.open)) {
            return Step::Deliver;
        }
        if !reading.open {
            return Step::Finish;
        }
        // The poll cadence, but a filling window ends on time.
        let due = reading.first_buffered.map_or(reading.next_poll, |t| {
            reading.next_poll.min(t + self.window)
        });
        if due > now {
            Step::WaitUntil(due)
        } else {
            Step::Poll
        }
    }

    /// When the next poll may go out after one at `polled` that returned `fetched` records,
    /// the stream saying the shard is `behind` or not, leaving `buffered` records waiting.
    /// Caught up (nothing came, nothing behind, nothing waiting), Lambda polls at its base
    /// rate; otherwise it reads on as fast as the shard's read limit allows.
    pub fn next_poll(
        &self,
        polled: Instant,
        fetched: usize,
        behind: bool,
        buffered: usize,
    ) -> Instant {
        let caught_up = fetched == 0 && !behind && buffered == 0;
        polled
            + if caught_up {
                self.idle_poll
            } else {
                self.min_poll_interval
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipe::{IDLE_POLL, MIN_POLL_INTERVAL};

    fn cadence(batch_size: usize, window: Duration) -> Cadence {
        Cadence {
            batch_size,
            window,
            idle_poll: IDLE_POLL,
            min_poll_interval: MIN_POLL_INTERVAL,
        }
    }

    fn reading(buffered: usize, first_buffered: Option<Instant>, next_poll: Instant) -> Reading {
        Reading {
            buffered,
            first_buffered,
            open: true,
            next_poll,
        }
    }

    /// Runs a shard reader on a simulated clock for `span`: each poll returns what
    /// `records_at(time since start)` says, each batch is delivered at once. Returns the
    /// polls and the invocations.
    fn simulate(c: &Cadence, span: Duration, records_at: impl Fn(Duration) -> usize) -> (u32, u32) {
        let start = Instant::now();
        let mut now = start;
        let mut r = reading(0, None, start);
        let (mut polls, mut invocations) = (0, 0);
        while now < start + span {
            match c.step(now, &r) {
                Step::Deliver => {
                    invocations += 1;
                    r.buffered -= r.buffered.min(c.batch_size);
                    r.first_buffered = (r.buffered > 0).then_some(now);
                }
                Step::Finish => panic!("an open shard is never finished"),
                Step::WaitUntil(due) => {
                    assert!(due > now, "a wait ends later than now");
                    now = due;
                }
                Step::Poll => {
                    polls += 1;
                    let fetched = records_at(now - start);
                    r.buffered += fetched;
                    if r.buffered > 0 && r.first_buffered.is_none() {
                        r.first_buffered = Some(now);
                    }
                    r.next_poll = c.next_poll(now, fetched, false, r.buffered);
                }
            }
        }
        (polls, invocations)
    }

    #[test]
    fn a_caught_up_shard_is_polled_once_a_second() {
        let c = cadence(100, Duration::ZERO);
        let (polls, invocations) = simulate(&c, Duration::from_secs(10), |_| 0);
        assert_eq!(polls, 10, "one poll per {IDLE_POLL:?} over 10 s");
        assert_eq!(invocations, 0);
        let t = Instant::now();
        assert_eq!(c.next_poll(t, 0, false, 0), t + IDLE_POLL);
    }

    #[test]
    fn a_busy_shard_is_polled_at_most_five_times_a_second_and_faster_than_when_idle() {
        let c = cadence(100, Duration::ZERO);
        // A record on every poll for 10 s.
        let (polls, invocations) = simulate(&c, Duration::from_secs(10), |_| 1);
        assert_eq!(
            polls, 50,
            "Kinesis' 5 GetRecords per second per shard, no more"
        );
        assert_eq!(
            invocations, 50,
            "each poll's record invoked at once (window 0)"
        );
    }

    #[test]
    fn a_shard_behind_or_with_records_waiting_is_not_idle() {
        let c = cadence(100, Duration::ZERO);
        let t = Instant::now();
        assert_eq!(c.next_poll(t, 0, true, 0), t + MIN_POLL_INTERVAL);
        assert_eq!(c.next_poll(t, 0, false, 3), t + MIN_POLL_INTERVAL);
        assert_eq!(c.next_poll(t, 7, false, 7), t + MIN_POLL_INTERVAL);
    }

    #[test]
    fn a_poll_waits_for_its_time_and_goes_out_at_it() {
        let c = cadence(100, Duration::ZERO);
        let t = Instant::now();
        let r = reading(0, None, t + IDLE_POLL);
        assert_eq!(c.step(t, &r), Step::WaitUntil(t + IDLE_POLL));
        assert_eq!(c.step(t + IDLE_POLL, &r), Step::Poll);
    }

    #[test]
    fn a_full_batch_is_delivered_at_once() {
        let c = cadence(10, Duration::from_secs(5));
        let t = Instant::now();
        let r = reading(10, Some(t), t + IDLE_POLL);
        assert_eq!(c.step(t, &r), Step::Deliver);
    }

    #[test]
    fn a_partial_batch_gathers_until_the_window_ends_even_before_the_next_poll() {
        let c = cadence(10, Duration::from_millis(500));
        let t = Instant::now();
        let r = reading(3, Some(t), t + IDLE_POLL);
        let window_end = t + Duration::from_millis(500);
        assert_eq!(c.step(t, &r), Step::WaitUntil(window_end));
        assert_eq!(c.step(window_end, &r), Step::Deliver);
    }

    #[test]
    fn a_partial_batch_is_polled_for_more_while_its_window_is_open() {
        let c = cadence(10, Duration::from_secs(5));
        let t = Instant::now();
        let r = reading(3, Some(t), t + MIN_POLL_INTERVAL);
        assert_eq!(c.step(t + MIN_POLL_INTERVAL, &r), Step::Poll);
    }

    #[test]
    fn a_shard_read_to_its_end_delivers_what_it_holds_then_finishes() {
        let c = cadence(10, Duration::from_secs(5));
        let t = Instant::now();
        let mut r = reading(3, Some(t), t);
        r.open = false;
        assert_eq!(c.step(t, &r), Step::Deliver);
        r.buffered = 0;
        r.first_buffered = None;
        assert_eq!(c.step(t, &r), Step::Finish);
    }
}
