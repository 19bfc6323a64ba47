//! The crate graph in docs/architecture.md ("The crates are the boxes") is the workspace's
//! real one: every normal (non-dev, non-build) dependency between workspace crates that
//! `cargo metadata` reports is an arrow of the diagram, and every arrow is a dependency. So
//! a producer, the API or the local tools cannot start linking the processor again without
//! this test failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, MetadataCommand};

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
    let meta = MetadataCommand::new()
        .manifest_path(repo().join("Cargo.toml"))
        .no_deps()
        .other_options(vec!["--offline".to_owned()])
        .exec()
        .expect("cargo metadata runs");
    let packages = meta.workspace_packages();
    let members: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p
                .dependencies
                .iter()
                .filter(|d| d.kind == DependencyKind::Normal)
                .filter(|d| members.contains(d.name.as_str()))
                .map(|d| d.name.clone())
                .collect();
            (p.name.to_string(), deps)
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
