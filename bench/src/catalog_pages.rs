//! `catalog-pages`: what a page of `/api/inventory` costs at a real catalog's size. It writes
//! `--products` product items (names of words, stock 0 to 1,000) into the embedded DynamoDB,
//! then drives the API's router (the one the API Lambda runs) in process: the first request
//! (the instance's load of the catalog), then each question a console asks, `--requests`
//! times, each request making its look for changes (the deployed API makes one at most once
//! a second), and reports p50 and p99. Baselines in the same run: one product's GET (a
//! single GetItem through the same router), and the naive answer to "the 50 lowest stock"
//! without an index, sorting every product on each request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use inventory_api::{router, ApiConfig, AppState, DisabledLauncher};
use inventory_domain::api::{InventoryPage, ProductView};
use inventory_domain::{ProductRecord, ProductStatus};
use inventory_generator::simulation::catalog_product;
use inventory_local::{EmulatorOptions, LocalAws};
use inventory_store::batch::{batch_write, UNPROCESSED_RETRY};
use inventory_store::items::ProductItem;
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;
use rand::{Rng as _, SeedableRng as _};
use tower::ServiceExt as _;

use crate::report::{machine_line, pct};

#[derive(clap::Args, Clone)]
pub(crate) struct CatalogPagesArgs {
    /// Products in the catalog.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) products: usize,
    /// Requests per question.
    #[arg(long, default_value_t = 200)]
    pub(crate) requests: usize,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
}

fn record(i: usize, quantity: u64) -> ProductRecord {
    let status = if i.is_multiple_of(50) {
        ProductStatus::Removed
    } else {
        ProductStatus::Active
    };
    catalog_product("bench", i, quantity, status)
}

async fn call(router: &axum::Router, uri: &str) -> anyhow::Result<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let resp = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty())?)
        .await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes().to_vec();
    let took = started.elapsed();
    anyhow::ensure!(
        status == StatusCode::OK,
        "{uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok((took, bytes))
}

/// p50 and p99 of `samples`, in ms.
fn summary(samples: &[Duration]) -> (f64, f64) {
    let us: Vec<i64> = samples.iter().map(|d| d.as_micros() as i64).collect();
    (pct(&us, 50.0) / 1000.0, pct(&us, 99.0) / 1000.0)
}

pub(crate) async fn catalog_pages(args: CatalogPagesArgs) -> anyhow::Result<()> {
    let aws = LocalAws::start(EmulatorOptions::default()).await?;
    let db = aws_sdk_dynamodb::Client::new(&aws.sdk_config());
    let tables = Tables::with_prefix("catalog-bench-");
    ensure_tables(&db, &tables).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let now = chrono::Utc::now();
    let mut requests = Vec::with_capacity(args.products);
    for i in 0..args.products {
        let item = ProductItem::from_record(&record(i, rng.random_range(0..=1_000)), now);
        requests.push((
            i,
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item.to_item()?))
                        .build()?,
                )
                .build(),
        ));
    }
    let written = Instant::now();
    let out = batch_write(&db, &tables.inventory, requests, UNPROCESSED_RETRY).await;
    anyhow::ensure!(
        out.failed.is_empty(),
        "{} products not written",
        out.failed.len()
    );
    println!("{}", machine_line());
    println!(
        "catalog pages at {} products ({} requests per question, each with its look for changes; DynamoDB: dynoxide on this machine); written in {:.1} s",
        args.products,
        args.requests,
        written.elapsed().as_secs_f64()
    );

    let router = router(
        AppState::new(
            db.clone(),
            tables.clone(),
            ApiConfig::default(),
            Arc::new(DisabledLauncher),
        )
        .with_catalog_look_interval(Duration::ZERO),
    );
    let (load, _) = call(&router, "/api/inventory?limit=1").await?;
    println!(
        "load (first request: Scan of every product): {:.0} ms",
        load.as_secs_f64() * 1000.0
    );

    // Baseline 1: one product's GET through the same router.
    let mut single = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let id = format!("bench-P{:06}", (i * 7919) % args.products + 1);
        single.push(call(&router, &format!("/api/inventory/{id}")).await?.0);
    }
    let (single_p50, single_p99) = summary(&single);

    // Baseline 2: the 50 lowest stock by sorting every product on each request.
    let (_, body) = call(&router, "/api/inventory?limit=1000").await?;
    let page: InventoryPage = serde_json::from_slice(&body)?;
    anyhow::ensure!(!page.items.is_empty(), "no products listed");
    let every: Vec<ProductView> = (0..args.products)
        .map(|i| {
            let r = record(i, (i as u64 * 7) % 1_001);
            ProductView {
                product_id: r.product_id,
                product_name: r.name,
                quantity: r.quantity,
                status: r.status,
                version: 1,
                last_event_at: r.last_event_at,
                updated_at: chrono::DateTime::UNIX_EPOCH,
            }
        })
        .collect();
    let mut naive = Vec::with_capacity(args.requests.min(50));
    for _ in 0..args.requests.min(50) {
        let started = Instant::now();
        let mut all = every.clone();
        all.sort_by(|a, b| (a.quantity, &a.product_id).cmp(&(b.quantity, &b.product_id)));
        all.truncate(50);
        let body = serde_json::to_vec(&all)?;
        std::hint::black_box(body);
        naive.push(started.elapsed());
    }
    let (naive_p50, naive_p99) = summary(&naive);

    println!("question\tp50_ms\tp99_ms\tp99/single_get");
    println!("one product (GET, baseline)\t{single_p50:.2}\t{single_p99:.2}\t1.0");
    println!(
        "naive 50 lowest (sort all per request, no I/O)\t{naive_p50:.2}\t{naive_p99:.2}\t{:.1}",
        naive_p99 / single_p99
    );
    let questions = [
        (
            "50 lowest stock",
            "/api/inventory?sort=quantity&order=asc&limit=50",
        ),
        (
            "50 highest stock",
            "/api/inventory?sort=quantity&order=desc&limit=50",
        ),
        ("50 by name", "/api/inventory?sort=name&limit=50"),
        (
            "50 latest updates",
            "/api/inventory?sort=updated_at&order=desc&limit=50",
        ),
        (
            "word of the name (chair), by stock",
            "/api/inventory?q=chair&sort=quantity&limit=50",
        ),
        (
            "two words (oak chair)",
            "/api/inventory?q=oak%20chair&limit=50",
        ),
        ("id prefix", "/api/inventory?q=bench-P0012&limit=50"),
        (
            "low stock <= 10, by name",
            "/api/inventory?low_stock=10&sort=name&limit=50",
        ),
        (
            "removed, by stock desc",
            "/api/inventory?status=removed&sort=quantity&order=desc&limit=50",
        ),
        ("1,000 by id", "/api/inventory?limit=1000"),
    ];
    for (name, uri) in questions {
        let mut samples = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            samples.push(call(&router, uri).await?.0);
        }
        let (p50, p99) = summary(&samples);
        println!("{name}\t{p50:.2}\t{p99:.2}\t{:.1}", p99 / single_p99);
    }
    // Deep in a listing: the 50th page of 100, following cursors.
    let mut samples = Vec::new();
    let mut uri = "/api/inventory?sort=quantity&limit=100".to_owned();
    for _ in 0..50 {
        let (took, body) = call(&router, &uri).await?;
        samples.push(took);
        let page: InventoryPage = serde_json::from_slice(&body)?;
        match page.next_cursor {
            Some(c) => uri = format!("/api/inventory?sort=quantity&limit=100&cursor={c}"),
            None => break,
        }
    }
    let (p50, p99) = summary(&samples);
    println!(
        "pages 1-50 of 100 by stock (cursor)\t{p50:.2}\t{p99:.2}\t{:.1}",
        p99 / single_p99
    );
    Ok(())
}
