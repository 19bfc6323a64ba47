//! Steps 5c-6: the shard log, after the writes it vouches for (shard_log.rs says why), in
//! one transaction with the shard's counters, so they count what the log vouches for, once.

use std::collections::BTreeMap;

use inventory_domain::dedup::LogRecord;
use inventory_domain::SequenceNumber;
use inventory_store::shard_log::{partition, product_tag, Attempt};
use inventory_store::stats::{self, ShardAdd};

use super::run::Run;
use super::statistics::delivery_counters;
use super::write::Written;
use super::{shard_key, Processor, ShardKey};

impl Processor {
    /// Appends each shard's processed events with its counters. If an append cannot be
    /// written, the whole shard's part of the batch is retried: the products see their
    /// records as redeliveries and the retry logs them (counting nothing for them:
    /// docs/consistency.md, "Counters"). The batch's delivery counts ride with its first
    /// shard's append, or alone when nothing is to be logged.
    pub(super) async fn log_and_count(&self, run: &mut Run<'_>, written: Written) {
        let Written {
            to_log,
            mut applied_to,
            mut changed,
        } = written;
        let mut attempts = attempts(run);
        for (key, attempt) in attempts.iter_mut() {
            attempt.changed = changed.remove(key).unwrap_or_default();
        }
        let mut deliveries_counted = false;
        for (key, attempt) in &attempts {
            let logged = to_log.get(key).map_or(&[][..], Vec::as_slice);
            if logged.is_empty() && attempt.unfinished.is_empty() && attempt.changed.is_empty() {
                continue;
            }
            let add = applied_to.remove(key).unwrap_or_default();
            let carries = !deliveries_counted;
            if self
                .append_shard(run, key, attempt, logged, add, carries)
                .await
            {
                deliveries_counted |= carries;
            }
        }
        if !deliveries_counted && run.failed.is_empty() && run.report.records > 0 {
            self.count_deliveries_alone(run).await;
        }
        run.report.phases.log_write_us = run.phase_us();
    }

    /// One shard's append of its `logged` events with what they `add` to its counters, and,
    /// when it `carries` them, the batch's delivery counts. `true` when written; otherwise
    /// the shard's first record fails, so the Pipe retries the shard's part of the batch.
    async fn append_shard(
        &self,
        run: &mut Run<'_>,
        key: &ShardKey,
        attempt: &Attempt,
        logged: &[LogRecord],
        add: ShardAdd,
        carries: bool,
    ) -> bool {
        let log_pk = partition(&key.0, &key.1);
        let report = &run.report;
        let appended = self
            .log
            .append_with(
                &key.0,
                &key.1,
                logged,
                attempt,
                (run.oldest, run.newest),
                |number, this| {
                    let mut add = add.clone();
                    if carries {
                        let mut log = report.log;
                        log.add(this);
                        add.counters = delivery_counters(report, log);
                    }
                    Ok(self
                        .counter_updates(
                            &key.1,
                            &add,
                            Some(stats::Through {
                                log_pk: &log_pk,
                                number,
                            }),
                            run.now,
                        )?
                        .to_vec())
                },
            )
            .await;
        match appended {
            Ok(cost) => {
                run.report.log.add(cost);
                true
            }
            Err(e) => {
                tracing::warn!(shard = %key.1, error = %e, "could not write the shard log and its counters; the Pipe will retry the batch");
                if let Some(first) =
                    (0..run.report.records).find(|i| shard_key(run.batch, *i) == *key)
                {
                    run.fail(first, e.to_string());
                }
                false
            }
        }
    }

    /// Step 6: a batch with nothing to log (rejections and duplicates only) still counts
    /// its deliveries, in one transaction of the shard's two counter updates. A failure here
    /// is logged and does not fail the batch.
    async fn count_deliveries_alone(&self, run: &mut Run<'_>) {
        let shard = shard_key(run.batch, 0).1;
        let add = ShardAdd {
            counters: delivery_counters(&run.report, run.report.log),
            ..ShardAdd::default()
        };
        if let Err(err) = self.add_counters(&shard, &add, run.now).await {
            tracing::warn!(error = %err, "could not update statistics");
            run.report.errors.push(err.to_string());
        }
    }
}

/// Per shard of the batch: the sequence numbers of its first and last records, and the
/// products whose records this delivery did not finish (those it reports failed). A Pipe
/// batch is one shard's, in stream order, so this walks the records without copying them.
fn attempts(run: &Run<'_>) -> BTreeMap<super::ShardKey, Attempt> {
    let batch = run.batch;
    let shard_of = |i: usize| {
        let r = batch.at(i);
        (
            r.event_source_arn,
            r.event_id.split_once(':').map_or("", |(s, _)| s),
        )
    };
    // (shard, first index, last index) by the records' sequence numbers.
    let mut ranges: Vec<((&str, &str), usize, usize)> = Vec::new();
    for i in 0..batch.len() {
        let here = shard_of(i);
        let seq = batch.at(i).sequence_number;
        match ranges.iter_mut().find(|(s, _, _)| *s == here) {
            Some((_, first, last)) => {
                if numeric_lt(seq, batch.at(*first).sequence_number) {
                    *first = i;
                }
                if numeric_lt(batch.at(*last).sequence_number, seq) {
                    *last = i;
                }
            }
            None => ranges.push((here, i, i)),
        }
    }
    let mut out: BTreeMap<super::ShardKey, Attempt> = BTreeMap::new();
    for (_, first, last) in ranges {
        let parse = |i: usize| SequenceNumber::parse(batch.at(i).sequence_number).ok();
        out.entry(shard_key(batch, first)).or_default().range = parse(first).zip(parse(last));
    }
    for i in &run.failed {
        let product = product_tag(batch.at(*i).partition_key);
        let attempt = out.entry(shard_key(batch, *i)).or_default();
        if !attempt.unfinished.contains(&product) {
            attempt.unfinished.push(product);
        }
    }
    out
}

/// Whether the decimal `a` is below `b` (as [`SequenceNumber`] orders them: by length, then
/// digits, leading zeros ignored), without parsing either.
fn numeric_lt(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) < (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::numeric_lt;

    #[test]
    fn sequence_numbers_compare_as_numbers_without_parsing() {
        assert!(numeric_lt("9", "10"));
        assert!(!numeric_lt("10", "9"));
        assert!(numeric_lt("0009", "10") && !numeric_lt("010", "10") && !numeric_lt("10", "010"));
        assert!(numeric_lt(
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588899"
        ));
    }
}
