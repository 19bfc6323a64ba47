//! Steps 5c-6: the shard log, after the writes it vouches for (dedup_log.rs says why), in
//! one transaction with the shard's counters, so they count what the log vouches for, once.

use inventory_store::stats::ShardAdd;

use super::run::Run;
use super::statistics::delivery_counters;
use super::write::Written;
use super::{shard_key, Processor};

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
        } = written;
        let (batch, now) = (run.batch, run.now);
        let mut deliveries_counted = false;
        for (key, logged) in &to_log {
            if logged.is_empty() {
                continue;
            }
            let add = applied_to.remove(key).unwrap_or_default();
            let carries = !deliveries_counted;
            let report = &run.report;
            let appended = self
                .log
                .append_with(
                    &key.0,
                    &key.1,
                    logged,
                    &[],
                    (run.oldest, run.newest),
                    |number, this| {
                        let mut add = add.clone();
                        if carries {
                            let mut log = report.log;
                            log.add(this);
                            add.counters = delivery_counters(report, log);
                        }
                        Ok(self
                            .counter_updates(&key.1, &add, Some(number), now)?
                            .to_vec())
                    },
                )
                .await;
            match appended {
                Ok(cost) => {
                    run.report.log.add(cost);
                    deliveries_counted |= carries;
                }
                Err(e) => {
                    tracing::warn!(shard = %key.1, error = %e, "could not write the shard log and its counters; the Pipe will retry the batch");
                    if let Some(first) =
                        (0..run.report.records).find(|i| shard_key(batch, *i) == *key)
                    {
                        run.fail(first, e.to_string());
                    }
                }
            }
        }

        // 6. A batch with nothing to log (rejections and duplicates only) still counts its
        // deliveries: one transaction of the shard's two counter updates. A failure here is
        // logged and does not fail the batch.
        if !deliveries_counted && run.failed.is_empty() && run.report.records > 0 {
            let shard = shard_key(batch, 0).1;
            let add = ShardAdd {
                counters: delivery_counters(&run.report, run.report.log),
                ..ShardAdd::default()
            };
            if let Err(err) = self.add_counters(&shard, &add, now).await {
                tracing::warn!(error = %err, "could not update statistics");
                run.report.errors.push(err.to_string());
            }
        }
        run.report.phases.log_write_us = run.phase_us();
    }
}
