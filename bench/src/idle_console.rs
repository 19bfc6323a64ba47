//! `idle-console`: what an open console costs in DynamoDB read units while no events flow,
//! measured. A catalog of `--products` is written into the embedded DynamoDB, with the
//! processor's per-shard counters as an earlier run left them (their 10-second buckets older
//! than the charts' 10 minutes); then the API's router (the API Lambda's, at its deployed
//! look interval) is polled on the console's schedule for `--seconds`: the inventory page
//! every second with `If-None-Match`, `/api/stats` every 5 s, the rejections, dead letters
//! and simulations every 15 s. Every DynamoDB request the API makes asks for its consumed
//! capacity (an SDK interceptor sets `ReturnConsumedCapacity`), and the bench adds up what
//! DynamoDB (dynoxide) reports. The instance's load of the catalog (its Scan, once) is shown
//! apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::{batch_get_item, get_item, query, scan};
use aws_sdk_dynamodb::types::{ConsumedCapacity, PutRequest, ReturnConsumedCapacity, WriteRequest};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt as _;
use inventory_api::{router, ApiConfig, AppState, DisabledLauncher};
use inventory_domain::{ProductRecord, ProductStatus};
use inventory_generator::simulation::catalog_product;
use inventory_local::{EmulatorOptions, LocalAws};
use inventory_store::batch::{batch_write, UNPROCESSED_RETRY};
use inventory_store::items::ProductItem;
use inventory_store::stats::{self, ShardAdd, StatsCounters};
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;
use tower::ServiceExt as _;

use crate::report::machine_line;

#[derive(clap::Args, Clone)]
pub(crate) struct IdleConsoleArgs {
    /// Products in the catalog.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) products: usize,
    /// How long the console polls.
    #[arg(long, default_value_t = 60)]
    pub(crate) seconds: u64,
    /// Shards whose counters exist.
    #[arg(long, default_value_t = 4)]
    pub(crate) shards: usize,
}

/// Read units DynamoDB reported, in thousandths.
#[derive(Debug, Default)]
struct Meter {
    milli_units: AtomicU64,
    requests: AtomicU64,
}

#[derive(Debug)]
struct CapacityMeter(Arc<Meter>);

fn units(c: &[ConsumedCapacity]) -> f64 {
    c.iter().filter_map(ConsumedCapacity::capacity_units).sum()
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let input = context.input_mut();
        let total = Some(ReturnConsumedCapacity::Total);
        if let Some(i) = input.downcast_mut::<query::QueryInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<scan::ScanInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<get_item::GetItemInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<batch_get_item::BatchGetItemInput>() {
            i.return_consumed_capacity = total;
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let used = if let Some(o) = output.downcast_ref::<query::QueryOutput>() {
            o.consumed_capacity()
                .and_then(ConsumedCapacity::capacity_units)
        } else if let Some(o) = output.downcast_ref::<scan::ScanOutput>() {
            o.consumed_capacity()
                .and_then(ConsumedCapacity::capacity_units)
        } else if let Some(o) = output.downcast_ref::<get_item::GetItemOutput>() {
            o.consumed_capacity()
                .and_then(ConsumedCapacity::capacity_units)
        } else {
            output
                .downcast_ref::<batch_get_item::BatchGetItemOutput>()
                .map(|o| units(o.consumed_capacity()))
        };
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.milli_units.fetch_add(
            (used.unwrap_or(0.0) * 1000.0).round() as u64,
            Ordering::Relaxed,
        );
        Ok(())
    }
}

impl Meter {
    fn read(&self) -> (u64, f64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }
}

fn record(i: usize) -> ProductRecord {
    catalog_product("idle", i, (i as u64 * 37) % 1_001, ProductStatus::Active)
}

async fn get(
    router: &axum::Router,
    uri: &str,
    etag: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let mut req = Request::get(uri);
    if let Some(tag) = etag {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let resp = router.clone().oneshot(req.body(Body::empty())?).await?;
    let status = resp.status();
    let tag = resp
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == StatusCode::OK || status == StatusCode::NOT_MODIFIED,
        "{uri}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(tag)
}

pub(crate) async fn idle_console(args: IdleConsoleArgs) -> anyhow::Result<()> {
    let aws = LocalAws::start(EmulatorOptions::default()).await?;
    let sdk = aws.sdk_config();
    let db = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = Tables::with_prefix("idle-");
    ensure_tables(&db, &tables).await?;
    let now = chrono::Utc::now();
    let requests = (0..args.products)
        .map(|i| {
            let item = ProductItem::from_record(&record(i), now).to_item()?;
            let put = PutRequest::builder().set_item(Some(item)).build()?;
            Ok((i, WriteRequest::builder().put_request(put).build()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = batch_write(&db, &tables.inventory, requests, UNPROCESSED_RETRY).await;
    anyhow::ensure!(
        out.failed.is_empty(),
        "{} products not written",
        out.failed.len()
    );
    // The counters an earlier run left: totals per shard, buckets 20 minutes old.
    let earlier = now - chrono::Duration::minutes(20);
    for shard in 0..args.shards {
        let add = ShardAdd {
            counters: StatsCounters {
                records: 1_000,
                applied: 990,
                ..StatsCounters::default()
            },
            last_applied_arrival_ms: Some(earlier.timestamp_millis()),
            ..ShardAdd::default()
        };
        stats::add(&db, &tables, &format!("shardId-{shard:012}"), &add, earlier).await?;
    }

    let meter = Arc::new(Meter::default());
    let metered = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(CapacityMeter(meter.clone()))
            .build(),
    );
    let router = router(AppState::new(
        metered,
        tables.clone(),
        ApiConfig::default(),
        Arc::new(DisabledLauncher),
    ));
    println!("{}", machine_line());
    let started = Instant::now();
    let mut etag = get(&router, "/api/inventory?limit=50&sort=quantity", None).await?;
    let (load_requests, load_units) = meter.read();
    println!(
        "idle console over {} products, {} shards: the instance's load {load_requests} requests, {load_units:.1} RRU in {:.1} s (once per instance)",
        args.products,
        args.shards,
        started.elapsed().as_secs_f64()
    );
    let polling = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Read units by endpoint polled.
    let mut by_endpoint: std::collections::BTreeMap<&str, (u64, f64)> = Default::default();
    let mut poll =
        async |uri: &'static str, etag: Option<&str>| -> anyhow::Result<Option<String>> {
            let before = meter.read();
            let tag = get(&router, uri, etag).await?;
            let after = meter.read();
            let entry = by_endpoint.entry(uri).or_default();
            entry.0 += after.0 - before.0;
            entry.1 += after.1 - before.1;
            Ok(tag)
        };
    for second in 0..args.seconds {
        tick.tick().await;
        if let Some(tag) = poll("/api/inventory?limit=50&sort=quantity", etag.as_deref()).await? {
            etag = Some(tag);
        }
        if second % 5 == 0 {
            poll("/api/stats", None).await?;
        }
        if second % 15 == 0 {
            poll("/api/rejections?limit=200", None).await?;
            poll("/api/dead-letters", None).await?;
            poll("/api/simulations", None).await?;
        }
    }
    let elapsed = polling.elapsed().as_secs_f64();
    let (requests, units) = meter.read();
    let (requests, units) = (requests - load_requests, units - load_units);
    println!("endpoint\tDynamoDB requests\tRRU\tRRU/s");
    for (uri, (n, u)) in &by_endpoint {
        println!("{uri}\t{n}\t{u:.1}\t{:.2}", u / elapsed);
    }
    println!(
        "polling for {elapsed:.0} s: {requests} DynamoDB requests, {units:.1} RRU = {:.2} RRU/s",
        units / elapsed
    );
    Ok(())
}
