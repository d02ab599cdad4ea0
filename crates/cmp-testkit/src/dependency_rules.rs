//! The workspace's dependency rules (docs/ARCHITECTURE.md, "Where things go"), checked on
//! `cargo metadata`: a crate that takes a dependency it must not have fails the test suite,
//! whether it takes it directly or through another workspace crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

/// Crates that stand for HTTP serving, a database, a CA implementation or the server.
const SERVER_SIDE: &[&str] = &["cmp-server", "cmp-store", "sqlx", "axum", "hyper"];
/// The inventory: what adapters must not write (an ACME adapter serves http-01, so it may
/// serve HTTP).
const INVENTORY: &[&str] = &["cmp-server", "cmp-store", "sqlx"];
const CA_STACK: &[&str] =
    &["cmp-ca-builtin", "cmp-ca-vault", "cmp-ca-acme", "cmp-acme", "cmp-vault"];

/// (crate, what it must not reach, why).
fn rules() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
    let both = |a: &[&'static str], b: &[&'static str]| [a, b].concat();
    vec![
        (
            "cmp-domain",
            both(&both(SERVER_SIDE, CA_STACK), &["cmp-ca", "tokio", "reqwest", "cmp-pki"]),
            "the domain knows no database, HTTP, runtime or CA",
        ),
        ("cmp-api", both(SERVER_SIDE, CA_STACK), "wire types know no server, database or CA"),
        ("cmp-client", both(SERVER_SIDE, CA_STACK), "the client reaches the server over HTTP only"),
        (
            "cmp-cli",
            both(&both(SERVER_SIDE, CA_STACK), &["cmp-ca"]),
            "cmpctl reaches the server over HTTP only",
        ),
        ("cmp-ca", both(SERVER_SIDE, CA_STACK), "the CA contract drags no implementation"),
        ("cmp-ca-builtin", INVENTORY.to_vec(), "adapters do not write the inventory"),
        ("cmp-ca-vault", INVENTORY.to_vec(), "adapters do not write the inventory"),
        ("cmp-ca-acme", INVENTORY.to_vec(), "adapters do not write the inventory"),
        (
            "cmp-store",
            both(&["cmp-server", "axum", "hyper", "cmp-ca"], CA_STACK),
            "storage knows no HTTP and no CA",
        ),
        ("cmp-pki", both(SERVER_SIDE, CA_STACK), "X.509 handling knows no storage or CA"),
        ("cmp-oidc", both(SERVER_SIDE, CA_STACK), "the OIDC client knows no server, storage or CA"),
        (
            "cmp-web",
            both(&both(SERVER_SIDE, CA_STACK), &["cmp-api", "tokio"]),
            "the dashboard's files are data: the server serves them, they know nothing of it",
        ),
        (
            "cmp-discovery",
            both(&both(SERVER_SIDE, CA_STACK), &["cmp-ca", "cmp-api", "reqwest"]),
            "the scanner knows no storage, server or CA: the inventory role feeds it and stores \
             its results",
        ),
        (
            "cmp-agent",
            both(&both(SERVER_SIDE, CA_STACK), &["cmp-ca"]),
            "the agent reaches the server over HTTP only: no database, server or CA",
        ),
    ]
}

/// Each workspace crate's normal (not dev or build) dependencies, by name.
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let dependencies = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (package["name"].as_str().unwrap().to_string(), dependencies)
        })
        .collect()
}

/// What `name` reaches: its dependencies, and theirs through workspace crates.
fn reached(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut next = vec![name.to_string()];
    while let Some(current) = next.pop() {
        for dependency in graph.get(&current).into_iter().flatten() {
            if seen.insert(dependency.clone()) {
                next.push(dependency.clone());
            }
        }
    }
    seen
}

#[test]
fn every_crate_keeps_to_its_dependency_rules() {
    let graph = normal_dependencies();
    let mut broken = Vec::new();
    for (name, forbidden, why) in rules() {
        assert!(graph.contains_key(name), "a rule names {name}, which is not in the workspace");
        let reach = reached(&graph, name);
        for bad in forbidden.iter().filter(|bad| reach.contains(**bad)) {
            broken.push(format!("{name} reaches {bad}: {why}"));
        }
    }
    assert!(broken.is_empty(), "dependency rules broken:\n{}", broken.join("\n"));
}

#[test]
fn the_rules_see_a_broken_one() {
    // The check itself: a graph where the domain reaches sqlx through the store.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("cmp-domain".to_string(), ["cmp-store".to_string()].into()),
        ("cmp-store".to_string(), ["sqlx".to_string()].into()),
    ]
    .into();
    assert!(reached(&graph, "cmp-domain").contains("sqlx"));
}
