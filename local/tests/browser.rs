//! The console in a real browser: headless Chromium (Debian's, driven over WebDriver by
//! chromedriver and fantoccini) against the local server, the embedded stack and the local
//! Pipe, with a catalog of 100,000 products written to DynamoDB before the API's first read:
//! the console sorts, searches and pages it through the API, highlights low stock, then
//! starts a simulation and shows its verdict, its products, a product's history, the
//! rejections (with their data) and the past simulations.
//!
//! `scripts/screenshot.sh` runs the other (ignored) test here, `readme_screenshot`: the
//! console after a `make demo`-sized simulation, saved as the README's screenshot.
//!
//! It needs Chromium, chromedriver and the built console, so it is `#[ignore]`d: a plain
//! `cargo test` lists it as ignored with the reason. `make test` builds the console and
//! runs it with `BROWSER_TEST=required` and `-- --include-ignored`; run alone it is
//! `cargo test -p inventory-local --test browser -- --include-ignored`. When it runs, a
//! missing prerequisite fails it, saying what to install or build; with
//! `BROWSER_TEST=required` a run that would leave it out fails too.

use inventory_testkit as harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use fantoccini::{Client, ClientBuilder, Locator};
use harness::{try_wait_for, wait_for, wait_until_async};
use inventory_api::ApiConfig;
use inventory_domain::catalog::words;
use inventory_domain::{ProductRecord, ProductStatus, RecentIds, SequenceNumber};
use inventory_generator::simulation::product_name;
use inventory_local::server::{serve, ServerOptions};
use inventory_local::stack::{LocalStack, StackOptions};
use inventory_store::batch::{batch_write, UNPROCESSED_RETRY};
use inventory_store::items::ProductItem;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;

const TOKEN: &str = "browser-test-token";

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What the browser test runs: the console's files, chromedriver and Chromium.
struct Prerequisites {
    site: PathBuf,
    chromedriver: PathBuf,
    chromium: PathBuf,
}

/// Finds the prerequisites, or says which are missing and how to get them.
fn prerequisites() -> Result<Prerequisites, String> {
    let site = std::env::var("CONSOLE_SITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_path("target/site"));
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut missing = Vec::new();
    if !site.join("pkg/inventory_console.wasm").exists() {
        missing.push(format!(
            "the console is not built in {}: run `make console`",
            site.display()
        ));
    }
    let chromedriver = executable(&chromedriver).ok_or_else(|| {
        format!("chromedriver (`{chromedriver}`, or $CHROMEDRIVER) is not installed: apt-get install chromium-driver (`make setup-test` does)")
    });
    let chromium = executable(&chromium).ok_or_else(|| {
        format!("Chromium (`{chromium}`, or $CHROMIUM) is not installed: apt-get install chromium (`make setup-test` does)")
    });
    match (missing.is_empty(), chromedriver, chromium) {
        (true, Ok(chromedriver), Ok(chromium)) => Ok(Prerequisites {
            site,
            chromedriver,
            chromium,
        }),
        (_, driver, browser) => {
            missing.extend(driver.err());
            missing.extend(browser.err());
            Err(missing.join("; "))
        }
    }
}

/// `name` if it is a path to a file, else the first file of that name on PATH.
fn executable(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// With `BROWSER_TEST=required` (`make test`), a machine without the browser or the built
/// console fails here, and so does a run that leaves the ignored browser test out.
#[test]
fn browser_test_required_means_it_can_run_and_is_run() {
    if std::env::var("BROWSER_TEST").as_deref() != Ok("required") {
        return;
    }
    if let Err(missing) = prerequisites() {
        panic!("BROWSER_TEST=required, but {missing}");
    }
    let includes_ignored = std::env::args().any(|a| a == "--include-ignored" || a == "--ignored");
    assert!(
        includes_ignored,
        "BROWSER_TEST=required, but this run leaves out the #[ignore]d browser test: pass `-- --include-ignored`"
    );
}

/// Products written straight to the inventory table before the API's first read.
const CATALOG: usize = 100_000;
/// Rows per page of the console's inventory (`console/src/api.rs`, `PAGE_SIZE`).
const PAGE: usize = 50;
/// What a wait in the browser allows: the console polls the page every second.
const BROWSER_PATIENCE: Duration = Duration::from_secs(30);

/// The catalog: `cat-P000001`…, named like the generator's products, stock 0 to 1,000; every
/// 50th removed (stock 0).
fn catalog() -> Vec<ProductRecord> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(24);
    (0..CATALOG)
        .map(|i| {
            let removed = i % 50 == 49;
            ProductRecord {
                product_id: format!("cat-P{:06}", i + 1),
                name: product_name(i),
                quantity: if removed {
                    0
                } else {
                    rng.random_range(0..=1_000)
                },
                status: if removed {
                    ProductStatus::Removed
                } else {
                    ProductStatus::Active
                },
                version: 1,
                last_sequence: SequenceNumber::zero(),
                last_shard: Some(0),
                last_stream: None,
                last_event_at: "2026-12-01T00:00:00Z".parse().unwrap(),
                recent_ids: RecentIds::default(),
                history: None,
            }
        })
        .collect()
}

/// Writes the catalog's items as the processor would have (BatchWriteItem, 25 at a time).
async fn seed(stack: &LocalStack, products: &[ProductRecord]) {
    let now = chrono::Utc::now();
    let requests = products
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let item = ProductItem::from_record(r, now).to_item().unwrap();
            let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
            (i, WriteRequest::builder().put_request(put).build())
        })
        .collect();
    let out = batch_write(
        &stack.db,
        &stack.options.tables.inventory,
        requests,
        UNPROCESSED_RETRY,
    )
    .await;
    assert!(
        out.failed.is_empty(),
        "{} products not written",
        out.failed.len()
    );
}

/// The console's tab, and what it runs against.
struct Session {
    c: Client,
    _driver: Driver,
    profile: PathBuf,
}

/// Starts chromedriver and a headless Chromium of `width`×`height`; `dark` makes the page's
/// `prefers-color-scheme` dark.
async fn browser(p: &Prerequisites, width: u32, height: u32, dark: bool) -> Session {
    let port = free_port();
    let profile =
        std::env::temp_dir().join(format!("inventory-chromium-{}-{port}", std::process::id()));
    let driver = Driver(
        Command::new(&p.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", p.chromedriver.display())),
    );
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--force-color-profile=srgb".into(),
        "--hide-scrollbars".into(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    if dark {
        args.push("--force-dark-mode".into());
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": p.chromium, "args": args }),
    );
    let webdriver = format!("http://127.0.0.1:{port}");
    let c = wait_for("a Chromium session", Duration::from_secs(20), || async {
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&webdriver)
            .await
            .ok()
    })
    .await;
    Session {
        c,
        _driver: driver,
        profile,
    }
}

/// Runs `script` (a function body) in the page with `args`; `null` when the page could not
/// run it (while it loads).
async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args).await.unwrap_or(Value::Null)
}

/// The text of the first element `css` finds, if there is one.
async fn text(c: &Client, css: &str) -> Option<String> {
    js(
        c,
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        vec![css.into()],
    )
    .await
    .as_str()
    .map(str::to_owned)
}

/// One row of the inventory table as shown.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: String,
    name: String,
    stock: u64,
    low: bool,
}

async fn rows(c: &Client) -> Vec<Row> {
    let v = js(
        c,
        "return [...document.querySelectorAll('#inventory tbody tr')].map(r =>
            [r.dataset.product, r.cells[1].textContent, r.cells[2].textContent, r.classList.contains('low')]);",
        vec![],
    )
    .await;
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| Row {
            id: r[0].as_str().unwrap_or_default().to_owned(),
            name: r[1].as_str().unwrap_or_default().to_owned(),
            stock: r[2]
                .as_str()
                .unwrap_or_default()
                .trim()
                .parse()
                .unwrap_or(u64::MAX),
            low: r[3].as_bool().unwrap_or(false),
        })
        .collect()
}

fn ids_of(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

/// Waits until the table shows exactly `want` (ids, in order).
async fn wait_for_rows(c: &Client, what: &str, want: &[&str]) -> Vec<Row> {
    wait_for(what, BROWSER_PATIENCE, || async {
        let shown = rows(c).await;
        (ids_of(&shown) == want).then_some(shown)
    })
    .await
}

/// Waits until the "N matching" line reads `n`.
async fn wait_for_matching(c: &Client, what: &str, n: usize) {
    wait_until_async(what, BROWSER_PATIENCE, || async {
        text(c, "#matching")
            .await
            .is_some_and(|t| t.replace(',', "") == format!("{n} matching"))
    })
    .await;
}

/// The event ids of the history page shown.
async fn history_ids(c: &Client) -> Vec<String> {
    let v = js(
        c,
        "return [...document.querySelectorAll('#history tbody tr')].map(r => r.cells[3].textContent);",
        vec![],
    )
    .await;
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.as_str().map(str::to_owned))
        .collect()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("could not click {css}: {e}"));
}

/// Replaces an input's text with `value`.
async fn type_into(c: &Client, id: &str, value: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// The `aria-sort` of the column header that sorts by `key`.
async fn aria_sort(c: &Client, key: &str) -> Option<String> {
    js(
        c,
        "const b = document.querySelector(`button[data-sort=${arguments[0]}]`);
         return b ? b.closest('th').getAttribute('aria-sort') : null;",
        vec![key.into()],
    )
    .await
    .as_str()
    .map(str::to_owned)
}

async fn save_failure(c: &Client, name: &str) -> PathBuf {
    let out = repo_path("target/browser-test");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join(name);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(&path, png);
    }
    path
}

/// Waits for the latest simulation's verdict to read "0 mismatches". Generous: a slow CI
/// machine running other suites takes minutes, a healthy one seconds.
async fn wait_for_verdict(c: &Client) -> String {
    const VERDICT_PATIENCE: Duration = Duration::from_secs(300);
    let verdict = try_wait_for(VERDICT_PATIENCE, || async {
        let e = c.find(Locator::Css("[data-testid=verdict]")).await.ok()?;
        let t = e.text().await.unwrap_or_default();
        t.contains("0 mismatches").then_some(t)
    })
    .await;
    match verdict {
        Some(t) => t,
        None => {
            let path = save_failure(c, "failure.png").await;
            panic!(
                "no verdict after {VERDICT_PATIENCE:?}; the page is in {}",
                path.display()
            );
        }
    }
}

/// The most Scan pages reading a simulation's products may take (a few hundred products
/// among 100,000 fill about 30 pages of 1 MB): a scan that goes on longer fails.
const MAX_SCAN_PAGES: usize = 1_000;

/// Every product of a simulation (its id prefix), read from the table.
async fn products_of_run(stack: &LocalStack, run_id: &str) -> Vec<(String, u64)> {
    let mut pages = stack
        .db
        .scan()
        .table_name(&stack.options.tables.inventory)
        .filter_expression("begins_with(product_id, :p)")
        .expression_attribute_values(":p", AttributeValue::S(format!("{run_id}-")))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    for _ in 0..MAX_SCAN_PAGES {
        let Some(page) = pages.next().await else {
            return out;
        };
        for item in page.unwrap().items.unwrap_or_default() {
            let p = ProductItem::from_item(item).unwrap();
            out.push((p.product_id, p.quantity));
        }
    }
    panic!("{run_id}: the scan of its products did not end after {MAX_SCAN_PAGES} pages");
}

async fn start_simulation(c: &Client, fields: &[(&str, &str)]) {
    type_into(c, "token", TOKEN).await;
    for (id, value) in fields {
        type_into(c, id, value).await;
    }
    click(c, "#start").await;
}

/// The dev server with the API (signed in by [`TOKEN`]) and the built console.
async fn serve_console(
    stack: &LocalStack,
    prerequisites: &Prerequisites,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    serve(
        stack,
        ServerOptions {
            port: 0,
            api: ApiConfig {
                token: Some(TOKEN.into()),
                allowed_origins: vec![],
            },
            site_dir: Some(prerequisites.site.clone()),
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Chromium, chromedriver and the built console: make test runs it (BROWSER_TEST=required, -- --include-ignored)"]
async fn console_pages_sorts_and_searches_a_large_catalog_and_shows_a_verified_simulation() {
    let prerequisites =
        prerequisites().unwrap_or_else(|missing| panic!("the browser test cannot run: {missing}"));
    let t0 = Instant::now();
    let stack = LocalStack::start(StackOptions {
        shards: 2,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    // Before the server's first inventory request: the API loads its copy of the catalog
    // with one Scan then, and learns of later changes from the processor's logs only.
    let products = catalog();
    seed(&stack, &products).await;
    eprintln!("catalog of {CATALOG} written in {:?}", t0.elapsed());
    let (pipe, _processor) = harness::start_processor_pipe(&stack);
    let (addr, _server) = serve_console(&stack, &prerequisites).await;
    let session = browser(&prerequisites, 1280, 2000, false).await;
    let c = &session.c;
    c.goto(&format!("http://{addr}/")).await.unwrap();

    check_first_page(c, &products).await;
    eprintln!("first page shown at {:?}", t0.elapsed());
    let mut by_stock: Vec<&ProductRecord> = products.iter().collect();
    by_stock.sort_by(|a, b| (a.quantity, &a.product_id).cmp(&(b.quantity, &b.product_id)));
    check_sorting_by_stock_and_paging(c, &by_stock).await;
    check_low_stock(c, &products, &by_stock).await;
    check_search_and_remembered_threshold(c, &by_stock).await;
    eprintln!("catalog checks done at {:?}", t0.elapsed());

    check_wrong_token_refused(c).await;
    start_simulation(
        c,
        &[
            ("products", "40"),
            ("events", "2500"),
            ("rate", "2500"),
            ("duplicates", "0.05"),
            ("malformed", "0.02"),
            ("invalid", "0.02"),
        ],
    )
    .await;
    let verdict = wait_for_verdict(c).await;
    assert!(verdict.starts_with("0 mismatches"), "{verdict}");
    eprintln!("verdict at {:?}", t0.elapsed());

    let out = repo_path("target/browser-test");
    std::fs::create_dir_all(&out).unwrap();
    let stored = check_simulation_products(c, &stack).await;
    check_product_page(c, &stored[0], &out).await;
    click(c, "#back-to-inventory").await;
    wait_until_async("the inventory again", BROWSER_PATIENCE, || async {
        rows(c).await.len() == stored.len()
    })
    .await;
    check_rejections(c).await;
    check_past_simulation_charts_and_progress(c).await;
    check_idle_page_answered_304(c).await;
    check_dead_letter_inbox(c).await;

    std::fs::write(out.join("console.png"), c.screenshot().await.unwrap()).unwrap();
    eprintln!("done at {:?}", t0.elapsed());

    session.c.clone().close().await.unwrap();
    pipe.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&session.profile);
}

/// The first page, in id order, and how many products there are in all.
async fn check_first_page(c: &Client, products: &[ProductRecord]) {
    let mut by_id: Vec<&ProductRecord> = products.iter().collect();
    by_id.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    let first: Vec<&str> = by_id[..PAGE]
        .iter()
        .map(|p| p.product_id.as_str())
        .collect();
    wait_for_rows(c, "the first page in id order", &first).await;
    wait_for_matching(c, "every product counted", CATALOG).await;
    assert_eq!(
        aria_sort(c, "product_id").await.as_deref(),
        Some("ascending")
    );
    assert_eq!(aria_sort(c, "quantity").await.as_deref(), Some("none"));
}

/// Sorted by stock over the whole catalog (`by_stock`): the true lowest first, then the
/// highest; then paging: Next shows the following rows, Previous the first again.
async fn check_sorting_by_stock_and_paging(c: &Client, by_stock: &[&ProductRecord]) {
    let lowest: Vec<&str> = by_stock.iter().map(|p| p.product_id.as_str()).collect();
    click(c, "button[data-sort=quantity]").await;
    let shown = wait_for_rows(c, "the 50 lowest stock levels", &lowest[..PAGE]).await;
    assert_eq!(shown[0].stock, by_stock[0].quantity);
    assert_eq!(aria_sort(c, "quantity").await.as_deref(), Some("ascending"));
    assert_eq!(aria_sort(c, "product_id").await.as_deref(), Some("none"));
    click(c, "button[data-sort=quantity]").await;
    let highest: Vec<&str> = lowest.iter().rev().take(PAGE).copied().collect();
    let shown = wait_for_rows(c, "the 50 highest stock levels", &highest).await;
    assert_eq!(shown[0].stock, by_stock[CATALOG - 1].quantity);
    assert_eq!(
        aria_sort(c, "quantity").await.as_deref(),
        Some("descending")
    );

    click(c, "button[data-sort=quantity]").await;
    wait_for_rows(c, "back to the lowest", &lowest[..PAGE]).await;
    click(c, "#next-page").await;
    wait_for_rows(c, "the second page by stock", &lowest[PAGE..2 * PAGE]).await;
    click(c, "#next-page").await;
    wait_for_rows(c, "the third page by stock", &lowest[2 * PAGE..3 * PAGE]).await;
    click(c, "#prev-page").await;
    wait_for_rows(c, "the second page again", &lowest[PAGE..2 * PAGE]).await;
    click(c, "#prev-page").await;
    wait_for_rows(c, "the first page again", &lowest[..PAGE]).await;
}

/// Low stock: rows at or under the threshold are highlighted (active ones only), and
/// "only low stock" asks the API for those alone.
async fn check_low_stock(c: &Client, products: &[ProductRecord], by_stock: &[&ProductRecord]) {
    let threshold = 2;
    type_into(c, "low-stock", &threshold.to_string()).await;
    let is_low = |p: &ProductRecord| p.status == ProductStatus::Active && p.quantity <= threshold;
    wait_until_async("the low-stock highlight", BROWSER_PATIENCE, || async {
        let shown = rows(c).await;
        shown.len() == PAGE
            && shown.iter().any(|r| r.low)
            && shown.iter().all(|r| {
                let p = products.iter().find(|p| p.product_id == r.id).unwrap();
                r.low == is_low(p)
            })
    })
    .await;
    click(c, "#low-stock-only").await;
    let low: Vec<&str> = by_stock
        .iter()
        .filter(|p| is_low(p))
        .map(|p| p.product_id.as_str())
        .collect();
    assert!(
        low.len() > PAGE,
        "the catalog has that many low-stock products"
    );
    wait_for_matching(c, "the low-stock products counted", low.len()).await;
    let shown = wait_for_rows(c, "only the low-stock products", &low[..PAGE]).await;
    assert!(shown.iter().all(|r| r.low && r.stock <= threshold));
    click(c, "#low-stock-only").await;
    wait_for_matching(c, "every product again", CATALOG).await;
}

/// A word of the name: only names with a word starting with it, counted over the whole
/// catalog, lowest stock first; the search stays on paging; the low-stock threshold
/// (set by [`check_low_stock`]) is remembered over a reload.
async fn check_search_and_remembered_threshold(c: &Client, by_stock: &[&ProductRecord]) {
    type_into(c, "search", "chair").await;
    let chairs: Vec<&str> = by_stock
        .iter()
        .filter(|p| words(&p.name).iter().any(|w| w.starts_with("chair")))
        .map(|p| p.product_id.as_str())
        .collect();
    assert!(chairs.len() > PAGE);
    wait_for_matching(c, "the products named chair counted", chairs.len()).await;
    let shown = wait_for_rows(c, "the chairs with the lowest stock", &chairs[..PAGE]).await;
    for r in &shown {
        assert!(
            words(&r.name).iter().any(|w| w.starts_with("chair")),
            "{} is not a chair",
            r.name
        );
    }
    click(c, "#next-page").await;
    wait_for_rows(c, "the next chairs", &chairs[PAGE..2 * PAGE]).await;
    type_into(c, "search", "zzzzqx").await;
    c.wait()
        .at_most(BROWSER_PATIENCE)
        .for_element(Locator::Id("no-match"))
        .await
        .unwrap();
    c.refresh().await.unwrap();
    wait_for_matching(c, "every product after a reload", CATALOG).await;
    let remembered = c
        .find(Locator::Id("low-stock"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(remembered.as_deref(), Some("2"));
}

/// A wrong token is refused and says so.
async fn check_wrong_token_refused(c: &Client) {
    type_into(c, "token", "not-the-token").await;
    click(c, "#start").await;
    wait_until_async(
        "the unauthorised message",
        Duration::from_secs(20),
        || async {
            text(c, "#simulation-form .error")
                .await
                .is_some_and(|t| t.contains("Unauthorised"))
        },
    )
    .await;
}

/// The simulation's products: searched by its id prefix, exactly those DynamoDB holds,
/// with their stock. Returns them (id, stock).
async fn check_simulation_products(c: &Client, stack: &LocalStack) -> Vec<(String, u64)> {
    let run_id = text(c, "#verdict p code")
        .await
        .expect("the verdict names the products")
        .trim_end_matches("-*")
        .to_owned();
    let stored = products_of_run(stack, &run_id).await;
    assert!(stored.len() > 10, "{run_id}: {} products", stored.len());
    type_into(c, "search", &run_id).await;
    wait_for_matching(c, "the simulation's products counted", stored.len()).await;
    let shown = wait_for(
        "the table to show the simulation's products",
        BROWSER_PATIENCE,
        || async {
            let shown = rows(c).await;
            (shown.len() == stored.len()).then_some(shown)
        },
    )
    .await;
    for (id, qty) in &stored {
        let row = shown
            .iter()
            .find(|r| &r.id == id)
            .unwrap_or_else(|| panic!("{id} is not in the table"));
        assert_eq!(row.stock, *qty, "{id}");
    }
    stored
}

/// A product's page: its stock, and its history (or what the API said about it); its
/// screenshot goes to `out`.
async fn check_product_page(c: &Client, (id, qty): &(String, u64), out: &Path) {
    click(c, &format!("#inventory tr[data-product='{id}'] a")).await;
    wait_until_async("the product's page", BROWSER_PATIENCE, || async {
        text(c, "#product-stock").await.as_deref() == Some(qty.to_string().as_str())
    })
    .await;
    let history = wait_for("the product's history", BROWSER_PATIENCE, || async {
        if let Some(e) = text(c, "#history-error").await {
            return Some(Err(e));
        }
        let first = js(
            c,
            "const r = document.querySelector('#history tbody tr');
             return r ? r.cells[r.cells.length - 1].textContent : null;",
            vec![],
        )
        .await;
        first.as_str().map(|s| Ok(s.trim().to_owned()))
    })
    .await;
    std::fs::write(out.join("product.png"), c.screenshot().await.unwrap()).unwrap();
    match history {
        // Newest first: the stock after the latest event is the product's.
        Ok(stock_after) => {
            assert_eq!(stock_after, qty.to_string(), "{id}");
            check_history_paging(c).await;
        }
        Err(e) => {
            assert!(!e.trim().is_empty());
            eprintln!("the history is not served yet: {e}");
        }
    }
}

/// Older events, a page at a time, and back (when there are older ones).
async fn check_history_paging(c: &Client) {
    let first_ids = history_ids(c).await;
    if c.find(Locator::Css("#history-older:not([disabled])"))
        .await
        .is_err()
    {
        return;
    }
    click(c, "#history-older").await;
    wait_until_async("older events", BROWSER_PATIENCE, || async {
        let ids = history_ids(c).await;
        !ids.is_empty() && ids != first_ids
    })
    .await;
    click(c, "#history-newer").await;
    wait_until_async("the newest events again", BROWSER_PATIENCE, || async {
        history_ids(c).await == first_ids
    })
    .await;
}

/// A rejected event is listed with its reason; the token typed in signs the console in,
/// so its data can be opened; filtered by a reason, only that reason is listed.
async fn check_rejections(c: &Client) {
    let reason = wait_for("a rejection", BROWSER_PATIENCE, || async {
        text(c, "#rejections tbody tr .reason").await
    })
    .await;
    assert!(
        inventory_domain::RejectionReason::parse(&reason).is_some(),
        "{reason}"
    );
    wait_until_async("a rejection's data", BROWSER_PATIENCE, || async {
        c.find(Locator::Css("#rejections .payload-toggle"))
            .await
            .is_ok()
    })
    .await;
    click(c, "#rejections .payload-toggle").await;
    let data = wait_for("the rejection's data shown", BROWSER_PATIENCE, || async {
        let v = js(
            c,
            "const r = [...document.querySelectorAll('#rejections tr.payload')].find(r => !r.hidden);
             return r ? r.textContent : null;",
            vec![],
        )
        .await;
        v.as_str().filter(|t| !t.trim().is_empty()).map(str::to_owned)
    })
    .await;
    assert!(!data.is_empty());
    let filter = c.find(Locator::Id("rejection-reason")).await.unwrap();
    filter.select_by_value(&reason).await.unwrap();
    wait_until_async("rejections of one reason", BROWSER_PATIENCE, || async {
        let reasons = js(
            c,
            "return [...document.querySelectorAll('#rejections tbody tr .reason')].map(e => e.textContent);",
            vec![],
        )
        .await;
        let reasons = reasons.as_array().cloned().unwrap_or_default();
        !reasons.is_empty() && reasons.iter().all(|r| r.as_str() == Some(reason.as_str()))
    })
    .await;
}

/// The past simulations list the verdict, the charts have axes, and the progress bar says
/// how far it got.
async fn check_past_simulation_charts_and_progress(c: &Client) {
    wait_until_async("the past simulations", BROWSER_PATIENCE, || async {
        text(c, "[data-testid=past-verdict]")
            .await
            .is_some_and(|t| t.starts_with("0 mismatches"))
    })
    .await;
    let labels = js(
        c,
        "return document.querySelectorAll('#chart-throughput text').length;",
        vec![],
    )
    .await;
    assert!(labels.as_u64().unwrap_or(0) >= 5, "axis labels: {labels}");
    let bar = js(
        c,
        "const b = document.querySelector('#verdict [role=progressbar]');
         return b ? [b.getAttribute('aria-valuenow'), b.getAttribute('aria-valuemax')] : null;",
        vec![],
    )
    .await;
    assert_eq!(bar[0], bar[1], "{bar}");
}

/// Idle, the page polled every second is unchanged: answered 304, without a body.
async fn check_idle_page_answered_304(c: &Client) {
    js(
        c,
        "performance.clearResourceTimings(); return null;",
        vec![],
    )
    .await;
    wait_until_async(
        "an unchanged page answered 304",
        BROWSER_PATIENCE,
        || async {
            js(
                c,
                "return performance.getEntriesByType('resource')
                .some(e => e.name.includes('/api/inventory?') && e.responseStatus === 304);",
                vec![],
            )
            .await
            .as_bool()
                == Some(true)
        },
    )
    .await;
}

/// The dead-letter inbox read the API (nothing was dead-lettered), and its redrive button
/// waits for a pending one.
async fn check_dead_letter_inbox(c: &Client) {
    let inbox = text(c, "#dead-letters").await.unwrap_or_default();
    assert!(inbox.contains("dead-lettered nothing"), "{inbox}");
    let redrive = c.find(Locator::Id("redrive")).await.unwrap();
    assert_eq!(
        redrive.prop("disabled").await.unwrap().as_deref(),
        Some("true")
    );
}

/// The README's screenshot: the console after a `make demo`-sized simulation (200 products,
/// 20,000 events at 2,000/s, 5 % duplicates, 1 % malformed, 1 % invalid): its verdict,
/// figures, charts and the inventory lowest stock first. `scripts/screenshot.sh` runs it
/// with `SCREENSHOT` naming the file (`SCREENSHOT_THEME=dark`: the dark theme); without it
/// the test does nothing, so `make test`'s `--include-ignored` run does not take one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "writes the README's screenshot: scripts/screenshot.sh runs it"]
async fn readme_screenshot() {
    let Some(out) = std::env::var_os("SCREENSHOT").map(PathBuf::from) else {
        eprintln!("SCREENSHOT is not set: no screenshot taken (scripts/screenshot.sh sets it)");
        return;
    };
    let prerequisites = prerequisites()
        .unwrap_or_else(|missing| panic!("the screenshot cannot be taken: {missing}"));
    let stack = LocalStack::start(StackOptions::default()).await.unwrap();
    let (pipe, _processor) = harness::start_processor_pipe(&stack);
    let (addr, _server) = serve_console(&stack, &prerequisites).await;
    let dark = std::env::var("SCREENSHOT_THEME").as_deref() == Ok("dark");
    let session = browser(&prerequisites, 1280, 1800, dark).await;
    let c = &session.c;
    c.goto(&format!("http://{addr}/")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#simulation-form"))
        .await
        .unwrap();
    start_simulation(
        c,
        &[
            ("products", "200"),
            ("events", "20000"),
            ("rate", "2000"),
            ("duplicates", "0.05"),
            ("malformed", "0.01"),
            ("invalid", "0.01"),
        ],
    )
    .await;
    wait_for_verdict(c).await;
    click(c, "button[data-sort=quantity]").await;
    wait_until_async("the inventory by stock", BROWSER_PATIENCE, || async {
        aria_sort(c, "quantity").await.as_deref() == Some("ascending")
            && rows(c).await.len() == PAGE
    })
    .await;
    // The charts and figures of the last poll of /api/stats (every 5 s) and the
    // rejections (every 15 s) are in.
    wait_until_async("the rejections and charts", BROWSER_PATIENCE, || async {
        c.find(Locator::Css("#rejections tbody tr")).await.is_ok()
            && c.find(Locator::Css("#chart-throughput polyline"))
                .await
                .is_ok()
    })
    .await;
    // Focus out of the form, at the top of the page.
    js(
        c,
        "document.activeElement.blur(); window.scrollTo(0, 0); return null;",
        vec![],
    )
    .await;
    let png = c.screenshot().await.unwrap();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot written to {}", out.display());
    session.c.clone().close().await.unwrap();
    pipe.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&session.profile);
}
