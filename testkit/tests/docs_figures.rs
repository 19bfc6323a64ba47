//! The figures the docs give about the configuration are the configuration's: each is read
//! from its source (`infra/template.yaml`, or the store's own code for what the shard log
//! costs) and compared with every place README.md and docs/*.md state it. A failure names
//! the document and line, what it says, and the source and what that says, so changing the
//! template's `BatchSize` without the docs fails here.
//!
//! The docs state these figures in forms the checks find:
//! - a Pipe setting as its template name and value (`BatchSize` 1,000; in a table row
//!   ``| `BatchSize` | 1000 |``); every setting has a row in docs/architecture.md's table;
//! - the number of Lambdas as "<number> Lambdas" or "<number> Lambda functions";
//! - the processor's memory as `MemorySize` <MB>, and in docs/deploy.md's
//!   `ProcessorFunction` row as "<MB> MB";
//! - the stream's retention as "<days>-day retention", "<days> days' retention",
//!   "retention (<days> days" or "retention (<hours> h";
//! - the dedup window's default as `DEDUP_WINDOW_SECONDS` … "(default <seconds>" or
//!   "<minutes> minutes by default";
//! - the shard log's cost in docs/consistency.md's table (batch size, log item, with the
//!   counters, per event), and elsewhere as "<x> write units per event" or
//!   "<n> WRU per batch of <batch>", each of which must be a row's figure.
//!
//! Historical figures (a run under other settings) are written otherwise ("a batching window
//! of 1 s"), so they are not taken for claims about the template.

use std::collections::BTreeMap;

use inventory_domain::dedup::{DedupKey, LogKey, LogRecord};
use inventory_domain::SequenceNumber;
use inventory_store::shard_log::{Attempt, ShardLogStore};
use inventory_store::stats::{self, ShardAdd, Through};
use regex::Regex;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");
const TEMPLATE_PATH: &str = "infra/template.yaml";

use inventory_testkit::docs::{documents, repo};

/// A value in the template, with its line (1-based) for the failure message.
#[derive(Debug, Clone)]
struct Source {
    value: String,
    line: usize,
}

impl Source {
    fn place(&self) -> String {
        format!("{TEMPLATE_PATH}:{}", self.line)
    }

    fn number(&self) -> u64 {
        self.value
            .parse()
            .unwrap_or_else(|e| panic!("{}: `{}` is not a number: {e}", self.place(), self.value))
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines (index, text) of the template's resource `name`, its header included.
fn resource(name: &str) -> Vec<(usize, &'static str)> {
    let header = format!("{name}:");
    let mut lines = TEMPLATE.lines().enumerate();
    let start = lines
        .by_ref()
        .find(|(_, l)| indent(l) == 2 && l.trim() == header)
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no resource {name}"));
    let body = lines.take_while(|(_, l)| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || indent(l) > 2
    });
    std::iter::once(start).chain(body).collect()
}

/// The first `key: value` of resource `name`, at any depth.
fn property(name: &str, key: &str) -> Source {
    let prefix = format!("{key}:");
    resource(name)
        .into_iter()
        .find_map(|(i, l)| {
            let value = l.trim().strip_prefix(&prefix)?;
            let value = value.split(" #").next().unwrap_or_default().trim();
            Some(Source {
                value: value.to_owned(),
                line: i + 1,
            })
        })
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH}: {name} has no {key}"))
}

/// The Pipe's scalar `KinesisStreamParameters` (`DeadLetterConfig` is a mapping).
fn pipe_settings() -> BTreeMap<String, Source> {
    let lines = resource("InventoryPipe");
    let (at, header) = lines
        .iter()
        .position(|(_, l)| l.trim() == "KinesisStreamParameters:")
        .map(|p| (p, lines[p].1))
        .expect("InventoryPipe has KinesisStreamParameters");
    lines[at + 1..]
        .iter()
        .take_while(|(_, l)| l.trim().is_empty() || indent(l) > indent(header))
        .filter(|(_, l)| indent(l) == indent(header) + 2)
        .filter_map(|(i, l)| {
            let (k, v) = l.trim().split_once(':')?;
            let v = v.trim();
            (!v.is_empty()).then(|| {
                let source = Source {
                    value: v.to_owned(),
                    line: i + 1,
                };
                (k.trim().to_owned(), source)
            })
        })
        .collect()
}

/// The template's Lambda functions, by logical name.
fn functions() -> Vec<String> {
    let lines: Vec<&str> = TEMPLATE.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| indent(l) == 4 && l.trim() == "Type: AWS::Serverless::Function")
        .filter_map(|(i, _)| {
            let header = lines[..i].iter().rev().find(|l| indent(l) == 2)?;
            Some(header.trim().trim_end_matches(':').to_owned())
        })
        .collect()
}

/// `1,000` → `1000`; backticks and emphasis dropped.
fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ',' | '`' | '*'))
        .collect()
}

/// 1769 → "1,769".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every match of `pattern` in the docs: (doc:line, the first group).
fn claims(pattern: &str) -> Vec<(String, String)> {
    let re = Regex::new(pattern).expect("a valid pattern");
    let mut out = Vec::new();
    for (path, text) in documents() {
        for (n, line) in text.lines().enumerate() {
            for caps in re.captures_iter(line) {
                out.push((format!("{path}:{}", n + 1), caps[1].to_owned()));
            }
        }
    }
    out
}

/// Fails with every listed difference, one a line.
fn assert_none(problems: Vec<String>, what: &str) {
    assert!(
        problems.is_empty(),
        "{what}:\n{}\nfix the document (or the source, if the document is right)",
        problems.join("\n")
    );
}

/// docs/architecture.md's Pipe table: one row per template setting, with its value.
#[test]
fn the_pipe_table_has_every_setting_of_the_template() {
    let doc = "docs/architecture.md";
    let text = std::fs::read_to_string(repo().join(doc)).expect("readable");
    let row = Regex::new(r"^\|\s*`(\w+)`\s*\|\s*([^|]+?)\s*\|").expect("a valid pattern");
    let rows: BTreeMap<String, (usize, String)> = text
        .lines()
        .enumerate()
        .filter_map(|(n, l)| {
            let caps = row.captures(l)?;
            Some((caps[1].to_owned(), (n + 1, caps[2].to_owned())))
        })
        .collect();
    let mut problems = Vec::new();
    for (name, source) in pipe_settings() {
        match rows.get(&name) {
            None => problems.push(format!(
                "{doc}: no row ``| `{name}` | {} |`` ({} has it)",
                source.value,
                source.place()
            )),
            Some((line, cell)) => {
                let first = plain(cell.split_whitespace().next().unwrap_or_default());
                if first != source.value {
                    problems.push(format!(
                        "{doc}:{line}: `{name}` is {cell}, but {} says {}",
                        source.place(),
                        source.value
                    ));
                }
            }
        }
    }
    assert_none(problems, "the Pipe table differs from the template");
}

/// Wherever a doc names a numeric Pipe setting with a value, it is the template's.
#[test]
fn every_pipe_setting_the_docs_state_is_the_templates() {
    let mut problems = Vec::new();
    let mut seen = 0;
    for (name, source) in pipe_settings() {
        if source.value.parse::<u64>().is_err() {
            continue;
        }
        let pattern = format!(r"`?\b{name}`?\**\s*(?:\|\s*)?(\d[\d,]*)");
        for (place, value) in claims(&pattern) {
            seen += 1;
            if plain(&value) != source.value {
                problems.push(format!(
                    "{place}: says {name} {value}, but {} says {}",
                    source.place(),
                    source.value
                ));
            }
        }
    }
    assert_none(
        problems,
        "Pipe settings in the docs differ from the template",
    );
    assert!(
        seen >= 6,
        "only {seen} Pipe figures found: did the docs' form change?"
    );
}

#[test]
fn the_docs_count_the_templates_lambdas() {
    let functions = functions();
    assert!(functions.len() >= 3, "{functions:?}");
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    let claimed = claims(r"(?i)\b(\w+) Lambda(?:s| functions)\b");
    let mut problems = Vec::new();
    let mut seen = 0;
    for (place, word) in claimed {
        let lower = word.to_lowercase();
        let Some(n) = words
            .iter()
            .position(|w| *w == lower)
            .or_else(|| lower.parse().ok())
        else {
            continue; // "the Lambdas", "three Lambdas'" are not counts.
        };
        seen += 1;
        if n != functions.len() {
            problems.push(format!(
                "{place}: says {word} Lambdas, but {TEMPLATE_PATH} defines {}: {functions:?}",
                functions.len()
            ));
        }
    }
    assert_none(problems, "the number of Lambdas differs from the template");
    assert!(seen >= 1, "no doc counts the Lambdas (README.md did)");
}

#[test]
fn the_processors_memory_is_the_templates() {
    let memory = property("ProcessorFunction", "MemorySize");
    let mb = memory.number();
    let mut problems = Vec::new();
    for (place, value) in claims(r"`?\bMemorySize`?\**\s+(\d[\d,]*)") {
        if plain(&value) != memory.value {
            problems.push(format!(
                "{place}: says MemorySize {value}, but {} says {mb}",
                memory.place()
            ));
        }
    }
    let deploy = std::fs::read_to_string(repo().join("docs/deploy.md")).expect("readable");
    let row = deploy
        .lines()
        .position(|l| l.starts_with("| `ProcessorFunction`"))
        .expect("docs/deploy.md has a `ProcessorFunction` row");
    let want = format!("{} MB", thousands(mb));
    if !deploy.lines().nth(row).unwrap_or_default().contains(&want) {
        problems.push(format!(
            "docs/deploy.md:{}: the processor's row does not say {want} ({})",
            row + 1,
            memory.place()
        ));
    }
    assert_none(problems, "the processor's memory differs from the template");
}

#[test]
fn the_streams_retention_is_the_templates() {
    let retention = property("EventStream", "RetentionPeriodHours");
    let hours = retention.number();
    let mut problems = Vec::new();
    let days_patterns = [
        r"(\d+)-day retention",
        r"(\d+) days' retention",
        r"retention\**\s*\((\d+) days",
    ];
    let mut seen = 0;
    for (pattern, unit) in days_patterns
        .iter()
        .map(|p| (*p, 24))
        .chain([(r"retention\**\s*\((\d+) h\b", 1)])
    {
        for (place, value) in claims(pattern) {
            seen += 1;
            if plain(&value).parse::<u64>().ok().map(|v| v * unit) != Some(hours) {
                problems.push(format!(
                    "{place}: says a retention of {value} {}, but {} says {hours} h",
                    if unit == 1 { "h" } else { "days" },
                    retention.place()
                ));
            }
        }
    }
    assert_none(problems, "the stream's retention differs from the template");
    assert!(seen >= 3, "only {seen} retention figures found");
}

/// The dedup window's default: the template's parameter, the code's constant and the docs'
/// "(default <seconds>" after `DEDUP_WINDOW_SECONDS` and "<minutes> minutes by default".
#[test]
fn the_dedup_windows_default_is_the_templates_and_the_codes() {
    let default = property("DedupWindowSeconds", "Default");
    let seconds = default.number();
    assert_eq!(
        seconds as i64 * 1000,
        inventory_domain::dedup::DEFAULT_WINDOW_MS,
        "{}'s DedupWindowSeconds default differs from inventory_domain::dedup::DEFAULT_WINDOW_MS",
        default.place()
    );
    let mut problems = Vec::new();
    let mut seen = 0;
    for (pattern, unit) in [
        (r"DEDUP_WINDOW_SECONDS`?.*?\(default (\d[\d,]*)", 1),
        (r"(\d+) minutes\s+by default", 60),
    ] {
        for (place, value) in claims(pattern) {
            seen += 1;
            if plain(&value).parse::<u64>().ok().map(|v| v * unit) != Some(seconds) {
                problems.push(format!(
                    "{place}: says a default dedup window of {value} {}, but {} says {seconds} s",
                    if unit == 1 { "s" } else { "minutes" },
                    default.place()
                ));
            }
        }
    }
    assert_none(
        problems,
        "the dedup window's default differs from the template",
    );
    assert!(seen >= 3, "only {seen} dedup window figures found");
}

/// One row of docs/consistency.md's shard log cost table.
#[derive(Debug)]
struct CostRow {
    line: usize,
    batch: u64,
    item_units: u64,
    transaction_units: u64,
    per_event: String,
}

fn cost_table() -> Vec<CostRow> {
    let text = std::fs::read_to_string(repo().join("docs/consistency.md")).expect("readable");
    let header = "| batch size | log item | log item and counters, in one transaction | write units per event |";
    let start = text
        .lines()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("docs/consistency.md has no table headed {header}"));
    let units = Regex::new(r"(\d[\d,]*) WRU").expect("a valid pattern");
    text.lines()
        .enumerate()
        .skip(start + 2)
        .take_while(|(_, l)| l.starts_with('|'))
        .map(|(n, l)| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let number = |cell: &str| -> u64 {
                let caps = units.captures(cell).unwrap_or_else(|| {
                    panic!("docs/consistency.md:{}: no `<n> WRU` in {cell}", n + 1)
                });
                plain(&caps[1]).parse().expect("digits")
            };
            CostRow {
                line: n + 1,
                batch: plain(cells[1]).parse().expect("a batch size"),
                item_units: number(cells[2]),
                transaction_units: number(cells[3]),
                per_event: cells[4].to_owned(),
            }
        })
        .collect()
}

/// `records` log records of distinct events, arrivals as a batch spanning under a second.
fn log_records(records: u64) -> Vec<LogRecord> {
    (0..records)
        .map(|i| LogRecord {
            key: LogKey::Wide(DedupKey::of("P", &format!("e{i}"))),
            content: 1,
            record: i as u32,
            arrival_ms: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

/// The attempt of a delivery of `records` records: sequence numbers as Kinesis writes them.
fn attempt(records: u64) -> Attempt {
    let seq = |n: u64| {
        SequenceNumber::parse(&format!(
            "4965432100000000000000000000000000000000000{n:013}"
        ))
        .expect("a sequence number")
    };
    Attempt {
        range: Some((seq(1), seq(records))),
        ..Attempt::default()
    }
}

/// What the store bills for one batch of `records` on a shard: the log item alone, and the
/// log item with the shard's counters in one transaction (as the processor writes it).
async fn billed(records: u64) -> (u64, u64) {
    let (db, tables) = inventory_testkit::dynamodb::dynamodb("figures").await;
    let store = ShardLogStore::new(db, tables.events.clone(), 900_000, 1_000_000);
    let log = log_records(records);
    let arrivals = (log[0].arrival_ms, log[log.len() - 1].arrival_ms);
    let alone = store
        .append(
            "s",
            "shardId-000000000001",
            &log,
            &attempt(records),
            arrivals,
        )
        .await
        .expect("the log item is written");
    let shard = "shardId-000000000002";
    let pk = inventory_store::shard_log::partition("s", shard);
    let add = ShardAdd::default();
    let with_counters = store
        .append_with(
            "s",
            shard,
            &log,
            &attempt(records),
            arrivals,
            |number, _| {
                let through = Some(Through {
                    log_pk: &pk,
                    number,
                });
                Ok(
                    stats::updates(&tables.events, shard, &add, through, chrono::Utc::now())?
                        .to_vec(),
                )
            },
        )
        .await
        .expect("the log item and counters are written");
    (alone.write_units, with_counters.write_units)
}

/// docs/consistency.md's table is what the store bills, and has the template's batch size.
#[tokio::test]
async fn the_shard_log_cost_table_is_what_the_store_bills() {
    let batch_size = pipe_settings()["BatchSize"].clone();
    let rows = cost_table();
    let mut problems = Vec::new();
    for row in &rows {
        let (item, transaction) = billed(row.batch).await;
        let per_event = transaction as f64 / row.batch as f64;
        let written: f64 = row.per_event.parse().unwrap_or(f64::NAN);
        if (row.item_units, row.transaction_units) != (item, transaction)
            || (written - per_event).abs() > 0.0005
        {
            problems.push(format!(
                "docs/consistency.md:{}: batch {} says {} WRU, {} WRU, {} per event; the store \
                 bills {item} WRU for the log item, {transaction} WRU with the counters, \
                 {per_event:.4} per event",
                row.line, row.batch, row.item_units, row.transaction_units, row.per_event
            ));
        }
    }
    if !rows.iter().any(|r| r.batch == batch_size.number()) {
        problems.push(format!(
            "docs/consistency.md: the shard log cost table has no row for the template's \
             BatchSize {} ({})",
            batch_size.value,
            batch_size.place()
        ));
    }
    assert_none(
        problems,
        "the shard log's cost differs from what the store bills",
    );
}

/// Elsewhere the docs cite the table's figures: "<x> write units per event" must be a row's
/// per-event figure, "<n> WRU per batch of <b>" a row's transaction.
#[test]
fn the_shard_log_cost_the_docs_cite_is_the_tables() {
    let rows = cost_table();
    let mut problems = Vec::new();
    let per_event = claims(r"(\d+\.\d+) (?:extra )?write units per event");
    for (place, value) in &per_event {
        if !rows.iter().any(|r| &r.per_event == value) {
            problems.push(format!(
                "{place}: {value} write units per event is no figure of docs/consistency.md's \
                 shard log cost table"
            ));
        }
    }
    let re = Regex::new(r"(\d[\d,]*) WRU per batch of (\d[\d,]*)").expect("a valid pattern");
    let mut per_batch = 0;
    for (path, text) in documents() {
        for (n, line) in text.lines().enumerate() {
            for caps in re.captures_iter(line) {
                per_batch += 1;
                let (units, batch) = (plain(&caps[1]), plain(&caps[2]));
                let ok = rows.iter().any(|r| {
                    r.batch.to_string() == batch && r.transaction_units.to_string() == units
                });
                if !ok {
                    problems.push(format!(
                        "{path}:{}: {units} WRU per batch of {batch} is not in docs/consistency.md's \
                         shard log cost table",
                        n + 1
                    ));
                }
            }
        }
    }
    assert_none(
        problems,
        "shard log costs in the docs differ from the table",
    );
    assert!(
        per_event.len() >= 2 && per_batch >= 2,
        "{} per-event and {per_batch} per-batch figures: did the docs' form change?",
        per_event.len()
    );
}

/// README.md's "Where things live" names every top-level directory of the repository.
#[test]
fn the_readmes_layout_table_names_every_directory() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("readable");
    let section = readme
        .split("## Where things live")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a section \"Where things live\"");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo()).expect("readable repository") {
        let entry = entry.expect("readable entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || name.starts_with('.') || name == "target" {
            continue;
        }
        // `tools/diagrams/` names tools/.
        if !section.contains(&format!("`{name}/")) {
            missing.push(name);
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "README.md's \"Where things live\" does not name {missing:?}"
    );
}
