//! The baseline: one UpdateItem per event on the same emulator, with 1 and with the
//! processor's write concurrency in flight, for the comparison with the coalescing pipeline.

use std::time::{Duration, Instant};

use anyhow::bail;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt as _;
use inventory_domain::{parse_event, Change};
use inventory_generator::Skew;
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;

use crate::pipeline::Ctx;
use crate::procfs::wall_ms;
use crate::workloads::{self, skew_name};

/// One UpdateItem per event, `concurrency` in flight, on the same emulator. Returns the
/// writes made and the time they took.
pub(crate) async fn naive_loop(
    ctx: &Ctx,
    skew: Skew,
    concurrency: usize,
) -> anyhow::Result<(u64, Duration)> {
    let table = format!(
        "bench-naive-{}-{concurrency}-inventory",
        skew_name(skew).replace(['(', ')', '.'], "")
    );
    ensure_tables(
        &ctx.db,
        &Tables {
            inventory: table.clone(),
            events: format!("{table}-events"),
        },
    )
    .await?;
    let mut sim = workloads::simulation(
        ctx.args.products,
        ctx.args.naive_events,
        skew,
        ctx.args.seed,
        "naive",
    )?;
    let mut updates = Vec::new();
    while let Some(r) = sim.next_record() {
        let ev = parse_event(&r.data).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        let delta: i64 = match ev.change {
            Change::Added { quantity, .. } | Change::Increased(quantity) => quantity as i64,
            Change::Decreased(q) => -(q as i64),
            Change::Removed => 0,
        };
        updates.push((ev.product_id, delta));
    }
    let writes = updates.len() as u64;
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(updates)
        .map(|(id, delta)| {
            let db = ctx.db.clone();
            let table = table.clone();
            async move {
                db.update_item()
                    .table_name(table)
                    .key("product_id", AttributeValue::S(id))
                    .update_expression("ADD quantity :d, version :one SET updated_at = :now")
                    .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":now", AttributeValue::N(wall_ms().to_string()))
                    .send()
                    .await
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        bail!(
            "naive UpdateItem failed: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        );
    }
    Ok((writes, elapsed))
}
