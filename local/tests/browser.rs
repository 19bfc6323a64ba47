//! The console in a real browser: headless Chromium (Debian's, driven over WebDriver by
//! chromedriver and fantoccini) against the local server, the embedded stack and the local
//! Pipe.
//!
//! It needs Chromium, chromedriver and the built console, so it is `#[ignore]`d: a plain
//! `cargo test` lists it as ignored with the reason. `make test` builds the console and
//! runs it with `BROWSER_TEST=required` and `-- --include-ignored`; run alone it is
//! `cargo test -p inventory-local --test browser -- --include-ignored`. When it runs, a
//! missing prerequisite fails it, saying what to install or build; with
//! `BROWSER_TEST=required` a run that would leave it out fails too.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use harness::wait_until_async;
use inventory_api::ApiConfig;
use inventory_local::server::{serve, ServerOptions};
use inventory_local::stack::{LocalStack, StackOptions};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Chromium, chromedriver and the built console: make test runs it (BROWSER_TEST=required, -- --include-ignored)"]
async fn console_starts_a_simulation_and_shows_the_verified_inventory() {
    let Prerequisites {
        site,
        chromedriver,
        chromium,
    } = prerequisites().unwrap_or_else(|missing| panic!("the browser test cannot run: {missing}"));

    let stack = LocalStack::start(StackOptions {
        shards: 2,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (pipe, _processor) = harness::start_processor_pipe(&stack);
    let (addr, _server) = serve(
        &stack,
        ServerOptions {
            port: 0,
            api: ApiConfig {
                token: Some(TOKEN.into()),
                allowed_origins: vec![],
            },
            site_dir: Some(site),
        },
    )
    .await
    .unwrap();

    let port = free_port();
    let profile = std::env::temp_dir().join(format!("inventory-chromium-{}", std::process::id()));
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", chromedriver.display())),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,2000",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    let webdriver = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..50 {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&webdriver)
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let c = client.expect("could not start a Chromium session");

    c.goto(&format!("http://{addr}/")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#simulation-form"))
        .await
        .unwrap();
    // A fresh stack: the empty state is shown, not an empty table.
    c.wait()
        .for_element(Locator::Css("#empty-inventory"))
        .await
        .unwrap();

    let set = |id: &'static str, value: &'static str| {
        let c = c.clone();
        async move {
            let e = c.find(Locator::Id(id)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(value).await.unwrap();
        }
    };
    // A wrong token is refused and says so.
    set("token", "not-the-token").await;
    c.find(Locator::Id("start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until_async(
        "the unauthorised message",
        Duration::from_secs(20),
        || async {
            c.find(Locator::Css("#simulation-form .error"))
                .await
                .is_ok()
        },
    )
    .await;
    let refusal = c
        .find(Locator::Css("#simulation-form .error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(refusal.contains("Unauthorised"), "{refusal}");

    set("token", TOKEN).await;
    set("products", "40").await;
    set("events", "2500").await;
    set("rate", "2500").await;
    set("duplicates", "0.05").await;
    set("malformed", "0.02").await;
    set("invalid", "0.02").await;
    c.find(Locator::Id("start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The verdict, computed once the pipeline caught up, reads 0 mismatches. Generous: a
    // slow CI machine running other suites takes minutes, a healthy one seconds.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(e) = c.find(Locator::Css("[data-testid=verdict]")).await {
            if e.text().await.unwrap_or_default().contains("0 mismatches") {
                break;
            }
        }
        if Instant::now() > deadline {
            let out = repo_path("target/browser-test");
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("failure.png"), c.screenshot().await.unwrap()).unwrap();
            panic!("no verdict after 300 s; the page is in target/browser-test/failure.png");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let verdict = c
        .find(Locator::Css("[data-testid=verdict]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(verdict.starts_with("0 mismatches"), "{verdict}");

    // The table shows exactly the products DynamoDB holds, with their stock.
    let stored = stack
        .db
        .scan()
        .table_name(&stack.options.tables.inventory)
        .send()
        .await
        .unwrap();
    let expected_rows = stored.items().len();
    assert!(expected_rows > 10);
    wait_until_async(
        "the table to show every product",
        Duration::from_secs(30),
        || async {
            c.find_all(Locator::Css("#inventory tbody tr"))
                .await
                .map(|rows| rows.len() == expected_rows)
                .unwrap_or(false)
        },
    )
    .await;
    let some = &stored.items()[0];
    let id = some["product_id"].as_s().unwrap();
    let qty = some["quantity"].as_n().unwrap();
    let rows = c
        .find_all(Locator::Css("#inventory tbody tr"))
        .await
        .unwrap();
    let mut found = false;
    for row in rows {
        let text = row.text().await.unwrap();
        if text.contains(id.as_str()) {
            assert!(
                text.split_whitespace().any(|w| w == qty),
                "{text} lacks {qty}"
            );
            found = true;
        }
    }
    assert!(found, "{id} is not in the table");

    // A rejected event is listed with its reason.
    let rejection = c
        .find(Locator::Css("#rejections tbody tr .reason"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        inventory_domain::RejectionReason::parse(&rejection).is_some(),
        "{rejection}"
    );

    // The dead-letter inbox read the API (nothing was dead-lettered), and its redrive
    // button waits for a pending one.
    let inbox = c
        .find(Locator::Id("dead-letters"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(inbox.contains("dead-lettered nothing"), "{inbox}");
    let redrive = c.find(Locator::Id("redrive")).await.unwrap();
    assert_eq!(
        redrive.prop("disabled").await.unwrap().as_deref(),
        Some("true")
    );

    let png = c.screenshot().await.unwrap();
    let out = repo_path("target/browser-test");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("console.png"), png).unwrap();

    c.close().await.unwrap();
    pipe.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(profile);
}
