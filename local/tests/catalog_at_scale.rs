//! A real catalog's size: 100,000 products loaded through the whole local path (the
//! generator's `--load-catalog`, Kinesis, the Pipe, the processor), then the API's answers
//! to what a store manager asks, each checked against a full read of the table: the lowest
//! and highest stock, names by a word, low stock, and every product page by page.

use inventory_testkit as harness;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use harness::{local_stack, publish_all, start_in_process_pipe, verify_exact, wait_for_delivered};
use http_body_util::BodyExt as _;
use inventory_api::{router, ApiConfig, AppState, DisabledLauncher};
use inventory_domain::api::{
    HistoryEntry, HistoryOutcome, HistoryPage, InventoryPage, ProductView,
};
use inventory_domain::catalog::words;
use inventory_domain::history;
use inventory_domain::ProductStatus;
use inventory_generator::{FaultRatios, SimConfig, Simulation, Skew};
use inventory_local::stack::{LocalStack, StackOptions};
use inventory_store::items::ProductItem;
use tower::ServiceExt as _;

const PRODUCTS: usize = 100_000;
/// After the load, a mix of stock changes, so stock and last update are not load order.
const CHANGES: u64 = 5_000;
/// How long the load may take (about 4 minutes on a 2-core machine; only a failing run
/// waits it out).
const LOAD: Duration = Duration::from_secs(900);

async fn page(router: &Router, uri: &str) -> InventoryPage {
    let resp = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{uri}");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// Every page of a listing (`uri` has a query string), in order; bounded.
async fn every_page(router: &Router, uri: &str) -> Vec<ProductView> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..=(PRODUCTS / 1000 + 1) {
        let with_cursor = match &next {
            None => uri.to_owned(),
            Some(c) => format!("{uri}&cursor={c}"),
        };
        let p = page(router, &with_cursor).await;
        assert!(p.items.len() <= 1000);
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => next = Some(c),
            None => return out,
        }
    }
    panic!("{uri}: the listing did not end");
}

/// The most Scan pages a full read of the table may take (100,000 items fill about 30 pages
/// of 1 MB): a read that goes on longer fails instead of running forever.
const MAX_SCAN_PAGES: usize = 1_000;

/// The whole table, read directly (the truth the API's answers are checked against).
async fn full_read(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<ProductView> {
    let mut pages = db.scan().table_name(table).into_paginator().send();
    let mut out = Vec::new();
    for _ in 0..MAX_SCAN_PAGES {
        let Some(p) = pages.next().await else {
            return out;
        };
        for item in p.unwrap().items.unwrap_or_default() {
            let p = ProductItem::from_item(item).unwrap();
            out.push(ProductView {
                product_id: p.product_id,
                product_name: p.product_name,
                quantity: p.quantity,
                status: p.status,
                version: p.version,
                last_event_at: p.last_event_at,
                updated_at: p.updated_at,
            });
        }
    }
    panic!("{table}: the scan did not end after {MAX_SCAN_PAGES} pages");
}

fn by_id_order(products: &[ProductView]) -> Vec<&str> {
    let mut ids = ids(products);
    ids.sort();
    ids
}

fn ids(products: &[ProductView]) -> Vec<&str> {
    products.iter().map(|p| p.product_id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalog_of_100000_products_is_sorted_searched_and_paged_over_all_of_it() {
    let stack = local_stack(StackOptions {
        shards: 4,
        ..StackOptions::default()
    })
    .await;
    load_catalog(&stack).await;
    let truth = full_read(&stack.db, &stack.options.tables.inventory).await;
    assert_eq!(truth.len(), PRODUCTS);
    let router = router(
        AppState::new(
            stack.db.clone(),
            stack.options.tables.clone(),
            ApiConfig::default(),
            std::sync::Arc::new(DisabledLauncher),
        )
        .with_catalog_look_interval(Duration::ZERO),
    );

    let mut by_stock = truth.clone();
    by_stock.sort_by(|a, b| (a.quantity, &a.product_id).cmp(&(b.quantity, &b.product_id)));
    check_lowest_highest_and_latest(&router, &truth, &by_stock).await;
    check_name_searches(&router, &truth).await;
    check_id_prefix(&router, &truth).await;
    check_low_stock(&router, &by_stock).await;
    check_histories(&router, &truth).await;

    // Every product, page by page, each once, in id order, as stored.
    let all = every_page(&router, "/api/inventory?limit=1000").await;
    let mut by_id = truth.clone();
    by_id.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    assert_eq!(all, by_id);
}

/// Loads the catalog, then a mix of stock changes, through the whole local path, and
/// checks the table holds exactly what was sent.
async fn load_catalog(stack: &LocalStack) {
    let mut sim = Simulation::new(SimConfig {
        products: PRODUCTS,
        events: PRODUCTS as u64 + CHANGES,
        skew: Skew::Uniform,
        seed: 24,
        run_id: "cat".into(),
        faults: FaultRatios::default(),
    })
    .unwrap()
    .loading_catalog();
    let pipe = start_in_process_pipe(stack);
    publish_all(stack, &mut sim, None).await;
    // Waits on the Pipe's count, not on `verify`: its polls read all 100,000 products each.
    wait_for_delivered(&pipe.stats, sim.generated(), LOAD).await;
    verify_exact(stack, &sim.expected()).await;
    pipe.stop().await.unwrap();
}

/// The 50 lowest and the 50 highest stock levels (ties in product id order), and the
/// latest updates.
async fn check_lowest_highest_and_latest(
    router: &Router,
    truth: &[ProductView],
    by_stock: &[ProductView],
) {
    let lowest = page(router, "/api/inventory?sort=quantity&order=asc&limit=50").await;
    assert_eq!(ids(&lowest.items), ids(&by_stock[..50]));
    let highest = page(router, "/api/inventory?sort=quantity&order=desc&limit=50").await;
    let mut top: Vec<ProductView> = by_stock.iter().rev().take(50).cloned().collect();
    top.sort_by(|a, b| (b.quantity, &b.product_id).cmp(&(a.quantity, &a.product_id)));
    assert_eq!(ids(&highest.items), ids(&top));
    assert_eq!(lowest.matching as usize, PRODUCTS);

    let mut by_update = truth.to_vec();
    by_update.sort_by(|a, b| (&b.updated_at, &b.product_id).cmp(&(&a.updated_at, &a.product_id)));
    let latest = page(router, "/api/inventory?sort=updated_at&order=desc&limit=50").await;
    assert_eq!(ids(&latest.items), ids(&by_update[..50]));
}

/// A word of the name (any case), and two words, every page.
async fn check_name_searches(router: &Router, truth: &[ProductView]) {
    for q in ["chair", "Oak%20chair", "WALNUT"] {
        let terms: Vec<String> = q
            .replace("%20", " ")
            .to_lowercase()
            .split(' ')
            .map(str::to_owned)
            .collect();
        let want: BTreeSet<&str> = truth
            .iter()
            .filter(|p| {
                let w = words(&p.product_name);
                terms.iter().all(|t| {
                    w.iter().any(|w| w.starts_with(t.as_str()))
                        || p.product_id.to_lowercase().starts_with(t.as_str())
                })
            })
            .map(|p| p.product_id.as_str())
            .collect();
        assert!(want.len() > 100, "{q}: the catalog has such names");
        let found = every_page(
            router,
            &format!("/api/inventory?q={q}&sort=name&limit=1000"),
        )
        .await;
        let found_ids: Vec<&str> = ids(&found);
        assert_eq!(found_ids.len(), want.len(), "{q}: each once");
        assert_eq!(
            found_ids.iter().copied().collect::<BTreeSet<_>>(),
            want,
            "{q}"
        );
        let names: Vec<String> = found
            .iter()
            .map(|p| p.product_name.to_lowercase())
            .collect();
        assert!(
            names.windows(2).all(|w| w[0] <= w[1]),
            "{q}: sorted by name"
        );
    }
}

/// An id prefix: exactly the ids it starts, in id order.
async fn check_id_prefix(router: &Router, truth: &[ProductView]) {
    let prefixed = every_page(router, "/api/inventory?q=CAT-P001&limit=1000").await;
    let want: Vec<&str> = by_id_order(truth)
        .into_iter()
        .filter(|id| id.starts_with("cat-P001"))
        .collect();
    assert_eq!(want.len(), 100, "cat-P00100 to cat-P00199");
    assert_eq!(ids(&prefixed), want);
}

/// Low stock: every active product at or under 10, lowest first.
async fn check_low_stock(router: &Router, by_stock: &[ProductView]) {
    let want: Vec<&str> = by_stock
        .iter()
        .filter(|p| p.status == ProductStatus::Active && p.quantity <= 10)
        .map(|p| p.product_id.as_str())
        .collect();
    assert!(!want.is_empty());
    let low = every_page(
        router,
        "/api/inventory?low_stock=10&sort=quantity&limit=1000",
    )
    .await;
    assert_eq!(ids(&low), want);
}

/// Histories: each adds up to the product's stock (a sample, the busiest included).
async fn check_histories(router: &Router, truth: &[ProductView]) {
    let mut sample: Vec<&ProductView> = truth.iter().step_by(PRODUCTS / 100).collect();
    sample.extend(truth.iter().max_by_key(|p| p.version));
    for p in sample {
        let entries = history_of(router, &p.product_id).await;
        let stock = if p.status == ProductStatus::Active {
            p.quantity
        } else {
            0
        };
        assert_eq!(
            history::adds_up(&entries, stock),
            Ok(()),
            "{}",
            p.product_id
        );
        let applied = entries
            .iter()
            .filter(|e| e.outcome == HistoryOutcome::Applied)
            .count();
        assert_eq!(
            applied as u64, p.version,
            "{}: every applied event is in it",
            p.product_id
        );
    }
}

/// A product's whole history, 200 entries a page (bounded: a history that does not end
/// within 100 pages fails).
async fn history_of(router: &Router, product_id: &str) -> Vec<HistoryEntry> {
    let mut entries = Vec::new();
    let mut uri = format!("/api/inventory/{product_id}/history?limit=200");
    for _ in 0..100 {
        let resp = router
            .clone()
            .oneshot(Request::get(&uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let page: HistoryPage = serde_json::from_slice(&bytes).unwrap();
        entries.extend(page.items);
        match page.next_cursor {
            Some(c) => uri = format!("/api/inventory/{product_id}/history?limit=200&cursor={c}"),
            None => return entries,
        }
    }
    panic!("{product_id}: the history did not end after 100 pages");
}
