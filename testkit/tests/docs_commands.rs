//! The documentation's commands still work: every line of a runnable block in README.md
//! and docs/*.md names a make target that exists and CLI subcommands and flags that the
//! CLIs accept; every `cargo … -p` in the docs names workspace packages and their targets;
//! and each diagram's SVG and inline copy match its Mermaid source. Nothing is built or
//! started: the CLIs' own clap definitions parse the documented lines in process.
//!
//! A block is runnable when its info string has the word `runnable` (```` ```sh runnable ````;
//! GitHub still highlights it as `sh`). In such a block, after `\` continuations are joined,
//! each line is split into words as a POSIX shell does (`shlex`: quotes, backslashes, `#`
//! comments), and into commands on `&&`, `||`, `;` and `|`. Each command must be one of:
//! - `make <target>…` → `make -n <target>…` (same options and variables) succeeds;
//! - `inventory-local …`, `generator …`, `inventory-ops …`, or
//!   `cargo run … -p <package> [--bin <bin>] -- …` of one of them → that CLI's clap `Cli`
//!   parses the words (`try_parse_from`): an unknown subcommand or flag, a bad value or a
//!   missing argument fails;
//! - `./scripts/<file>` → exists and is executable;
//! - `curl`, `export`, `cd` or only `NAME=value` assignments → skipped (they need a running
//!   stack).
//!
//! Anything else fails the test, so a runnable block cannot silently hold unchecked lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cargo_metadata::{Metadata, MetadataCommand, Target};
use clap::error::ErrorKind;
use clap::Parser as _;

use inventory_testkit::docs::{documents, repo};

/// A command found in a document, with where it was found.
#[derive(Debug, Clone)]
struct DocCommand {
    place: String,
    /// Which runnable block of its document (0 for the first).
    block: usize,
    words: Vec<String>,
}

/// The commands of every runnable block of `text`.
fn runnable_commands(path: &str, text: &str) -> Vec<DocCommand> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut runnable = false;
    let mut blocks = 0;
    let mut pending = String::new();
    let mut pending_line = 0;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            if in_block {
                in_block = false;
            } else {
                in_block = true;
                runnable = info.split_whitespace().any(|w| w == "runnable");
                blocks += usize::from(runnable);
            }
            continue;
        }
        if !(in_block && runnable) {
            continue;
        }
        if pending.is_empty() {
            pending_line = n + 1;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                let place = format!("{path}:{pending_line}");
                for words in split_commands(&shell_words(&pending)) {
                    out.push(DocCommand {
                        place: place.clone(),
                        block: blocks - 1,
                        words,
                    });
                }
                pending.clear();
            }
        }
    }
    out
}

/// Splits a line into words as a POSIX shell does (quotes, backslashes, a `#` comment), with
/// the operators `&&`, `||`, `;` and `|` as words of their own when spaced, and a `;` ending a
/// word split off. Unbalanced quotes give no words (and so fail the block's checks).
fn shell_words(line: &str) -> Vec<String> {
    let Some(words) = shlex::split(line) else {
        return vec![format!("<unbalanced quotes in: {line}>")];
    };
    words
        .into_iter()
        .flat_map(|w| match w.strip_suffix(';') {
            Some(head) if !head.is_empty() => vec![head.to_owned(), ";".to_owned()],
            _ => vec![w],
        })
        .collect()
}

fn split_commands(words: &[String]) -> Vec<Vec<String>> {
    words
        .split(|w| matches!(w.as_str(), "&&" | ";" | "|" | "||"))
        .filter(|c| !c.is_empty())
        .map(<[String]>::to_vec)
        .collect()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// What a documented command is checked as.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Skip,
    Make(Vec<String>),
    Cli { bin: String, args: Vec<String> },
    Script(String),
}

/// Decides how to check a command; `Err` for one a runnable block must not hold.
fn classify(words: &[String]) -> Result<Check, String> {
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .skip_while(|w| is_assignment(w))
        .collect();
    let Some((&program, rest)) = words.split_first() else {
        return Ok(Check::Skip); // only assignments, e.g. API=… TOKEN=…
    };
    let rest: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
    match program {
        "curl" | "export" | "cd" => Ok(Check::Skip),
        // Options and variables go to make too, so an unknown option fails.
        "make" => Ok(Check::Make(rest)),
        "inventory-local" | "generator" | "inventory-ops" => Ok(Check::Cli {
            bin: program.to_owned(),
            args: rest,
        }),
        "cargo" if rest.first().map(String::as_str) == Some("run") => cargo_run(&rest[1..]),
        p if p.starts_with("./scripts/") => Ok(Check::Script(p.to_owned())),
        other => Err(format!(
            "`{other}` is not a command this test knows how to check; teach it \
             (testkit/tests/docs_commands.rs) or take the line out of the runnable block"
        )),
    }
}

/// `cargo run [options] -- args`: which binary, with which arguments.
fn cargo_run(words: &[String]) -> Result<Check, String> {
    let (options, args) = match words.iter().position(|w| w == "--") {
        Some(i) => (&words[..i], words[i + 1..].to_vec()),
        None => (words, Vec::new()),
    };
    let value_of = |names: &[&str]| -> Option<String> {
        options.iter().enumerate().find_map(|(i, w)| {
            names.iter().find_map(|n| {
                if w == n {
                    options.get(i + 1).cloned()
                } else {
                    w.strip_prefix(&format!("{n}=")).map(str::to_owned)
                }
            })
        })
    };
    let package = value_of(&["-p", "--package"])
        .ok_or("`cargo run` without `-p <package>`: name the package")?;
    let bins = package_binaries(&package)?;
    let bin = match value_of(&["--bin"]) {
        Some(bin) if bins.contains(&bin) => bin,
        Some(bin) => {
            return Err(format!(
                "package {package} has no binary {bin} (it has {bins:?})"
            ))
        }
        None if bins.len() == 1 => bins[0].clone(),
        None => {
            return Err(format!(
            "package {package} has binaries {bins:?}: `cargo run` needs `--bin <name>` to pick one"
        ))
        }
    };
    Ok(Check::Cli { bin, args })
}

/// The workspace's packages and targets, as `cargo metadata` reports them (read once).
fn metadata() -> &'static Metadata {
    static METADATA: OnceLock<Metadata> = OnceLock::new();
    METADATA.get_or_init(|| {
        MetadataCommand::new()
            .manifest_path(repo().join("Cargo.toml"))
            .no_deps()
            .other_options(vec!["--offline".to_owned()])
            .exec()
            .expect("cargo metadata runs")
    })
}

/// Selects targets of a kind (`Target::is_bin`, …).
type TargetFilter = fn(&Target) -> bool;

/// The targets of workspace package `package` that `is` selects, by name.
fn targets(package: &str, is: TargetFilter) -> Result<Vec<String>, String> {
    let packages = metadata().workspace_packages();
    let found = packages
        .iter()
        .find(|p| p.name.as_str() == package)
        .ok_or_else(|| format!("no workspace package is named {package}"))?;
    Ok(found
        .targets
        .iter()
        .filter(|t| is(t))
        .map(|t| t.name.clone())
        .collect())
}

/// The binary targets of a workspace package.
fn package_binaries(package: &str) -> Result<Vec<String>, String> {
    targets(package, Target::is_bin)
}

/// Parses `bin args…` with that CLI's clap definition, in process: `Err` when it refuses.
fn parse_cli(bin: &str, args: &[String]) -> Result<(), String> {
    let words = std::iter::once(bin.to_owned()).chain(args.iter().cloned());
    let parsed = match bin {
        "inventory-local" => inventory_local::cli::Cli::try_parse_from(words).map(drop),
        "generator" => inventory_generator::cli::Cli::try_parse_from(words).map(drop),
        "inventory-ops" => inventory_ops::cli::Cli::try_parse_from(words).map(drop),
        other => {
            return Err(format!(
                "`{other}` is not a CLI this test can parse; teach parse_cli() about it"
            ))
        }
    };
    match parsed {
        Ok(()) => Ok(()),
        // A documented `--help` or `--version` is a command that works.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Ok(()),
        Err(e) => Err(format!(
            "`{bin} {}` was refused: {}",
            args.join(" "),
            e.render().to_string().trim()
        )),
    }
}

/// Runs one check; `Err` says what is wrong.
fn run_check(check: &Check) -> Result<(), String> {
    match check {
        Check::Skip => Ok(()),
        Check::Make(args) => {
            let out = Command::new("make")
                .current_dir(repo())
                .arg("-n")
                .args(args)
                .output()
                .map_err(|e| format!("running make: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`make -n {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
        Check::Cli { bin, args } => parse_cli(bin, args),
        Check::Script(path) => {
            use std::os::unix::fs::PermissionsExt as _;
            let meta = std::fs::metadata(repo().join(path)).map_err(|e| format!("{path}: {e}"))?;
            if meta.permissions().mode() & 0o111 != 0 {
                Ok(())
            } else {
                Err(format!("{path} is not executable"))
            }
        }
    }
}

#[test]
fn every_command_in_a_runnable_block_still_parses() {
    let mut checked: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (path, text) in documents() {
        for cmd in runnable_commands(&path, &text) {
            let result = classify(&cmd.words).and_then(|check| {
                let kind = match &check {
                    Check::Skip => "skipped",
                    Check::Make(_) => "make",
                    Check::Cli { .. } => "cli",
                    Check::Script(_) => "script",
                };
                *checked.entry(kind).or_default() += 1;
                run_check(&check)
            });
            if let Err(e) = result {
                failures.push(format!("{}: `{}`\n    {e}", cmd.place, cmd.words.join(" ")));
            }
        }
    }
    eprintln!("runnable commands: {checked:?}");
    assert!(
        failures.is_empty(),
        "documented commands that no longer work:\n{}",
        failures.join("\n")
    );
    // The README's own commands are among them, so the convention cannot quietly lapse.
    assert!(
        checked.get("make").copied().unwrap_or(0) >= 2,
        "{checked:?}"
    );
    assert!(checked.get("cli").copied().unwrap_or(0) >= 2, "{checked:?}");
}

/// The README's first screen offers exactly two commands, `make demo` and `make test`.
#[test]
fn the_readme_opens_with_make_demo_and_make_test() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let commands = runnable_commands("README.md", &readme);
    let first: Vec<String> = commands
        .iter()
        .filter(|c| c.block == 0)
        .map(|c| c.words.join(" "))
        .collect();
    assert_eq!(first, ["make demo", "make test"]);
    let line: usize = commands[0]
        .place
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        line <= 30,
        "the two commands moved off the first screen (line {line})"
    );
}

#[test]
fn the_checker_refuses_what_it_should() {
    let words = |s: &str| shell_words(s);
    // A flag the CLI does not have, an unknown subcommand or a bad value is refused by the
    // CLI's own parser.
    let bogus = classify(&words("inventory-local demo --port 0 --no-such-flag")).unwrap();
    assert!(run_check(&bogus).unwrap_err().contains("--no-such-flag"));
    for refused in [
        "inventory-local frobnicate",
        "inventory-ops frobnicate",
        "generator publish --events many",
        "cargo run -p inventory-generator --bin generator -- publish --no-such-flag",
    ] {
        let check = classify(&words(refused)).unwrap();
        assert!(run_check(&check).is_err(), "{refused}");
    }
    let help = classify(&words("generator publish --help")).unwrap();
    assert_eq!(run_check(&help), Ok(()));
    assert!(run_check(&Check::Make(vec!["no-such-target".into()])).is_err());
    // `cargo run` of a package with two binaries needs --bin.
    assert!(
        classify(&words("cargo run -p inventory-generator -- publish"))
            .unwrap_err()
            .contains("--bin")
    );
    assert!(classify(&words("rm -rf /")).is_err());
    // `cargo … -p` names packages and their targets.
    let cargo = |s: &str| cargo_targets_problems(&words(s));
    assert!(cargo("cargo build -p inventory-bench --bin inventory-bench").is_empty());
    assert!(!cargo("cargo build -p inventory-local --bin inventory-bench").is_empty());
    assert!(!cargo("cargo test -p no-such-package").is_empty());
    assert!(!cargo("cargo test -p inventory-testkit --test no_such_test").is_empty());
    assert!(!cargo("cargo bench -p inventory-processor --bench no_such_bench").is_empty());
    assert_eq!(
        cargo_spans("a `cargo build\n  -p x` and ```` `cargo y` ```` b `make z`"),
        [(3, "cargo build\n  -p x".to_owned())]
    );
    // Parsing: comments, continuations' joins, quotes and operators.
    assert_eq!(
        words(r#"A=1 make dev 'x y' "a\"b" # comment && no"#),
        ["A=1", "make", "dev", "x y", "a\"b"]
    );
    assert_eq!(
        split_commands(&words("make a && make b; curl x | jq .")),
        [
            vec!["make".to_owned(), "a".to_owned()],
            vec!["make".to_owned(), "b".to_owned()],
            vec!["curl".to_owned(), "x".to_owned()],
            vec!["jq".to_owned(), ".".to_owned()],
        ]
    );
    let doc = "```sh runnable\nmake demo \\\n  --x   # c\n```\n```sh\nrm -rf /\n```\n";
    let cmds = runnable_commands("t.md", doc);
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].words, ["make", "demo", "--x"]);
    assert_eq!(cmds[0].place, "t.md:2");
}

/// Each `cargo` command in a code span (`` `cargo …` ``, possibly over lines) of `text`, with
/// the byte offset where it starts. A span is delimited by backtick runs of equal length.
fn cargo_spans(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let run_at = |i: usize| bytes[i..].iter().take_while(|b| **b == b'`').count();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        let body = i + n;
        let mut j = body;
        let close = loop {
            match bytes[j..].iter().position(|b| *b == b'`') {
                None => break None,
                Some(k) if run_at(j + k) == n => break Some(j + k),
                Some(k) => j += k + run_at(j + k),
            }
        };
        let Some(close) = close else { break };
        let span = &text[body..close];
        if span.starts_with("cargo ") {
            out.push((body, span.to_owned()));
        }
        i = close + n;
    }
    out
}

/// The `cargo` commands of a document: in code spans outside fences, and the lines of fenced
/// blocks (`\` continuations joined), as (line, words).
fn cargo_commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut prose = String::new();
    let mut out = Vec::new();
    let mut in_fence = false;
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            prose.push('\n');
            continue;
        }
        if !in_fence {
            prose.push_str(line);
            prose.push('\n');
            continue;
        }
        prose.push('\n');
        let (start, mut joined) = pending.take().unwrap_or((n + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                out.push((start, shell_words(&joined)));
            }
        }
    }
    for (at, span) in cargo_spans(&prose) {
        let line = prose[..at].matches('\n').count() + 1;
        out.push((line, shell_words(&span.replace('\n', " "))));
    }
    out.into_iter()
        .flat_map(|(line, words)| {
            split_commands(&words)
                .into_iter()
                .filter(|c| c.first().map(String::as_str) == Some("cargo"))
                .map(move |c| (line, c))
        })
        .collect()
}

/// What is wrong with the packages and targets a `cargo` command names (empty: nothing).
fn cargo_targets_problems(words: &[String]) -> Vec<String> {
    // Words after `--` are the program's, not cargo's.
    let end = words.iter().position(|w| w == "--").unwrap_or(words.len());
    let words = &words[..end];
    let value_of = |flags: &[&str]| -> Vec<String> {
        words
            .windows(2)
            .filter(|w| flags.contains(&w[0].as_str()))
            .map(|w| w[1].clone())
            .collect()
    };
    let mut problems = Vec::new();
    // A placeholder (`-p …`, `-p <package>`) names no package.
    let mut packages: Vec<String> = value_of(&["-p", "--package"])
        .into_iter()
        .filter(|p| !(p.contains('…') || p.starts_with('<')))
        .collect();
    for package in &packages {
        if let Err(e) = targets(package, |_| true) {
            problems.push(e);
        }
    }
    if packages.is_empty() {
        packages = metadata()
            .workspace_packages()
            .iter()
            .map(|p| p.name.to_string())
            .collect();
    }
    let kinds: [(&str, TargetFilter); 3] = [
        ("--bin", Target::is_bin),
        ("--test", Target::is_test),
        ("--bench", Target::is_bench),
    ];
    for (flag, is) in kinds {
        for name in value_of(&[flag]) {
            let found = packages
                .iter()
                .any(|p| targets(p, is).is_ok_and(|t| t.contains(&name)));
            if !found {
                problems.push(format!(
                    "no package of {packages:?} has a `{flag} {name}` target"
                ));
            }
        }
    }
    problems
}

/// Every `cargo … -p <package> [--bin|--test|--bench <target>]` in the docs, in prose or in a
/// block, names a workspace package and a target of it, so a moved binary or test fails here.
#[test]
fn every_cargo_command_in_the_docs_names_real_packages_and_targets() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        for (line, words) in cargo_commands(&text) {
            checked += 1;
            for problem in cargo_targets_problems(&words) {
                failures.push(format!(
                    "{path}:{line}: `{}`\n    {problem}",
                    words.join(" ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "documented cargo commands that name what does not exist:\n{}",
        failures.join("\n")
    );
    assert!(
        checked >= 10,
        "only {checked} cargo commands found in the docs"
    );
}

/// Each docs/*.mmd has an SVG rendered from exactly this source (scripts/render-diagrams.sh
/// records its sha256) and, where its .md has a ```mermaid block, the same text inline.
#[test]
fn diagrams_are_rendered_from_their_current_source() {
    let docs = repo().join("docs");
    let mut sources = 0;
    for entry in std::fs::read_dir(&docs).unwrap() {
        let src = entry.unwrap().path();
        if src.extension().is_none_or(|e| e != "mmd") {
            continue;
        }
        sources += 1;
        let out = Command::new("sha256sum")
            .arg(&src)
            .output()
            .expect("sha256sum");
        let text = String::from_utf8_lossy(&out.stdout);
        let sum = text.split_whitespace().next().expect("a sha256");
        let svg = std::fs::read_to_string(src.with_extension("svg"))
            .unwrap_or_else(|e| panic!("{}: no SVG ({e}); run `make diagrams`", src.display()));
        let first = svg.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("sha256 {sum}")),
            "{} changed since its SVG was rendered; run `make diagrams`",
            src.display()
        );
        let source = std::fs::read_to_string(&src).unwrap();
        if let Ok(md) = std::fs::read_to_string(src.with_extension("md")) {
            if let Some(start) = md.find("```mermaid\n") {
                let body = &md[start + "```mermaid\n".len()..];
                let body = &body[..body.find("\n```").map_or(body.len(), |i| i + 1)];
                assert_eq!(
                    body,
                    source,
                    "the ```mermaid block of {} differs from {}; run `make diagrams`",
                    src.with_extension("md").display(),
                    src.display()
                );
            }
        }
    }
    assert!(sources > 0, "no docs/*.mmd");
}

/// Every `.rs` file of the repository (not `target/`, not installed tools).
fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                rust_sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn defines_fn(source: &str, name: &str) -> bool {
    source.contains(&format!("fn {name}(")) || source.contains(&format!("fn {name}<"))
}

/// The documents prove their claims by naming tests: a link ``[`test_name`](path)`` must
/// point at a file that defines `fn test_name`, and any other code span that looks like a
/// test name (a snake_case identifier of four or more words) must be a function somewhere
/// in the repository. A renamed or deleted test then fails here, not silently in the docs.
#[test]
fn every_cited_test_exists() {
    let root = repo();
    let mut files = Vec::new();
    rust_sources(&root, &mut files);
    let sources: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    // Crate names (serde_path_to_error, say) look like test names but are not.
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let is_crate = |s: &str| {
        lock.contains(&format!("name = \"{s}\""))
            || lock.contains(&format!("name = \"{}\"", s.replace('_', "-")))
    };
    let is_test_like = |s: &str| {
        !is_crate(s)
            && s.matches('_').count() >= 3
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let mut problems = Vec::new();
    let mut cited = 0;
    for (path, text) in documents() {
        let dir = root.join(&path).parent().unwrap().to_path_buf();
        let mut in_fence = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
                continue;
            }
            if in_fence {
                continue;
            }
            let mut rest = line;
            while let Some(start) = rest.find('`') {
                let after = &rest[start + 1..];
                let Some(end) = after.find('`') else { break };
                let span = &after[..end];
                rest = &after[end + 1..];
                if !is_test_like(span) {
                    continue;
                }
                cited += 1;
                // A link right after the code span: [`name`](target)
                let linked = rest
                    .strip_prefix("](")
                    .and_then(|r| r.find(')').map(|e| &r[..e]))
                    .filter(|target| target.ends_with(".rs"));
                match linked {
                    Some(target) => match std::fs::read_to_string(dir.join(target)) {
                        Ok(source) if defines_fn(&source, span) => {}
                        Ok(_) => problems.push(format!("{path}: {target} has no `fn {span}`")),
                        Err(e) => problems.push(format!("{path}: link to {target}: {e}")),
                    },
                    None if sources.iter().any(|s| defines_fn(s, span)) => {}
                    None => problems.push(format!("{path}: no `fn {span}` in the repository")),
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "cited tests that do not exist:\n{}",
        problems.join("\n")
    );
    assert!(
        cited >= 10,
        "only {cited} tests cited: did the convention change?"
    );
}
