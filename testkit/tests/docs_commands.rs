//! The documentation's commands still work: every line of a runnable block in README.md
//! and docs/*.md names a make target that exists and CLI subcommands and flags that the
//! real binaries accept; and each diagram's SVG and inline copy match its Mermaid source.
//!
//! A block is runnable when its info string has the word `runnable` (```` ```sh runnable ````;
//! GitHub still highlights it as `sh`). In such a block, after `\` continuations are joined
//! and `#` comments dropped, each command (split on `&&`, `;`, `|`) must be one of:
//! - `make <target>…` → `make -n <target>…` (same options and variables) succeeds;
//! - `inventory-local …`, `generator …`, or `cargo run … -p <package> [--bin <bin>] -- …`
//!   → the binary, run with the same arguments plus `--help`, exits 0. Clap parses every
//!   argument before it acts on `--help`, so an unknown subcommand or flag, or a bad value,
//!   fails; nothing is started;
//! - `./scripts/<file>` → exists and is executable;
//! - `curl`, `export`, `cd` or only `NAME=value` assignments → skipped (they need a running
//!   stack).
//!
//! Anything else fails the test, so a runnable block cannot silently hold unchecked lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("local/ is inside the repository")
        .to_path_buf()
}

/// README.md and docs/*.md, as (path relative to the repository, text).
fn documents() -> Vec<(String, String)> {
    let root = repo();
    let mut paths = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable document");
            let rel = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            (rel, text)
        })
        .collect()
}

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

/// Splits a line into words the way a POSIX shell would for these simple commands: quotes
/// and backslashes, a `#` comment, and `&&`, `;` and `|` as separate words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '#' if !in_word => break,
            ';' | '|' | '&' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let mut op = c.to_string();
                while chars.peek() == Some(&c) {
                    op.push(c);
                    chars.next();
                }
                words.push(op);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
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
             (local/tests/docs_commands.rs) or take the line out of the runnable block"
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

/// The `[[bin]]` names of a workspace package (or its default binary, named after it).
fn package_binaries(package: &str) -> Result<Vec<String>, String> {
    let root = repo();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let members = workspace
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .ok_or("no workspace members")?;
    for member in members.split('"').skip(1).step_by(2) {
        let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml"))
            .map_err(|e| format!("{member}/Cargo.toml: {e}"))?;
        if !manifest.contains(&format!("name = \"{package}\"")) {
            continue;
        }
        let mut bins = Vec::new();
        let mut in_bin = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin {
                if let Some(name) = line.strip_prefix("name = ") {
                    bins.push(name.trim_matches('"').to_owned());
                }
            }
        }
        if bins.is_empty() && root.join(member).join("src/main.rs").exists() {
            bins.push(package.to_owned());
        }
        return Ok(bins);
    }
    Err(format!("no workspace package is named {package}"))
}

/// The binaries the documents run. `inventory-local` is this package's (cargo builds it for
/// this test); `generator` is another package's, built here once with the same profile,
/// target directory and feature set as this run (`--workspace --tests`, as `make test`
/// runs), so it links against what is already compiled.
fn binary(name: &str) -> Result<PathBuf, String> {
    static OTHERS: OnceLock<Result<(), String>> = OnceLock::new();
    let local = PathBuf::from(env!("CARGO_BIN_EXE_inventory-local"));
    match name {
        "inventory-local" => Ok(local),
        "generator" | "inventory-ops" => OTHERS
            .get_or_init(|| {
                let dir = local.parent().ok_or("no binary directory")?;
                let profile = dir.file_name().and_then(|p| p.to_str()).unwrap_or("debug");
                let target_dir = dir.parent().ok_or("no target directory")?;
                let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
                cargo
                    .current_dir(repo())
                    .args(["build", "--quiet", "--locked", "--workspace", "--tests"])
                    .args([
                        "--bin",
                        "generator",
                        "--bin",
                        "inventory-ops",
                        "--target-dir",
                    ])
                    .arg(target_dir);
                match profile {
                    "debug" => {}
                    "release" => {
                        cargo.arg("--release");
                    }
                    other => {
                        cargo.args(["--profile", other]);
                    }
                }
                let out = cargo.output().map_err(|e| format!("running cargo: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "building generator failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                Ok(())
            })
            .clone()
            .and_then(|()| {
                let dir = local.parent().ok_or("no binary directory")?;
                Ok(dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
            }),
        other => Err(format!(
            "the binary `{other}` is not one this test can run; teach binary() about it"
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
        Check::Cli { bin, args } => {
            let exe = binary(bin)?;
            let out = Command::new(&exe)
                .current_dir(repo())
                .args(args)
                .arg("--help")
                // Parsing only: no AWS configuration may reach for instance metadata.
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "local")
                .env("AWS_SECRET_ACCESS_KEY", "local")
                .output()
                .map_err(|e| format!("running {}: {e}", exe.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`{bin} {} --help` was refused: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
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
    // A flag the CLI does not have is refused by the real binary.
    let bogus = classify(&words("inventory-local demo --port 0 --no-such-flag")).unwrap();
    assert!(run_check(&bogus).unwrap_err().contains("--no-such-flag"));
    let bogus_sub = classify(&words("inventory-local frobnicate")).unwrap();
    assert!(run_check(&bogus_sub).is_err());
    assert!(run_check(&Check::Make(vec!["no-such-target".into()])).is_err());
    // `cargo run` of a package with two binaries needs --bin.
    assert!(
        classify(&words("cargo run -p inventory-generator -- publish"))
            .unwrap_err()
            .contains("--bin")
    );
    assert!(classify(&words("rm -rf /")).is_err());
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
