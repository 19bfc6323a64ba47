//! The crate graph in docs/architecture.md ("The crates are the boxes") is the workspace's
//! real one: every normal (non-dev, non-build) dependency between workspace crates that
//! `cargo metadata` reports is an arrow of the diagram, and every arrow is a dependency. So
//! a producer, the API or the local tools cannot start linking the processor again without
//! this test failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ is inside the repository")
        .to_path_buf()
}

/// The diagram's name of a box → the package it stands for.
fn package_of(node: &str) -> String {
    match node {
        "api" => "inventory-api".to_owned(),
        "deadletters" => "inventory-dead-letters".to_owned(),
        other => format!("inventory-{other}"),
    }
}

/// `(from, to)` package pairs of the arrows in the section's mermaid block.
fn documented_edges() -> BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md"))
        .expect("docs/architecture.md is readable");
    let section = doc
        .split("## The crates are the boxes")
        .nth(1)
        .expect("docs/architecture.md has a section \"The crates are the boxes\"");
    let block = section
        .split("```mermaid")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has a mermaid block");
    block
        .lines()
        .filter_map(|line| {
            let (from, to) = line.trim().split_once("-->")?;
            Some((package_of(from.trim()), package_of(to.trim())))
        })
        .collect()
}

/// Workspace package → its normal dependencies on other workspace packages.
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages is a list");
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                // `kind` is null for a normal dependency, "dev" or "build" otherwise.
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|name| members.contains(*name))
                .map(str::to_owned)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_owned(), deps)
        })
        .collect()
}

#[test]
fn the_crate_graph_is_the_flowchart() {
    let graph = workspace_graph();
    let real: BTreeSet<(String, String)> = graph
        .iter()
        .flat_map(|(from, deps)| deps.iter().map(move |to| (from.clone(), to.clone())))
        .collect();
    let documented = documented_edges();
    let undocumented: Vec<_> = real.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&real).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/architecture.md's crate graph differs from cargo metadata.\n\
         dependencies the diagram does not show: {undocumented:?}\n\
         arrows with no such dependency: {stale:?}"
    );
}

#[test]
fn only_the_lambda_binary_and_its_drivers_link_the_processor() {
    let graph = workspace_graph();
    for package in ["inventory-api", "inventory-generator", "inventory-local"] {
        let deps = graph
            .get(package)
            .unwrap_or_else(|| panic!("{package} is a workspace member"));
        assert!(
            !deps.contains("inventory-processor"),
            "{package} depends on inventory-processor outside its tests: the DynamoDB \
             layout belongs in inventory-store, and the local stack runs the processor binary"
        );
    }
}
