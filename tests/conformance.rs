//! The shared conformance corpus: Masterminds semver constraints, tag policies and
//! format-preserving YAML edits. Runs `tests/data/conformance`, or the corpus in
//! `TAGPROMOTER_CONFORMANCE_DIR` when that is set (same three parts, same file names).

use std::path::PathBuf;

use serde_json::Value;
use tagpromoter::policy::{Constraint, Version};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("TAGPROMOTER_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance"),
    }
}

fn load(name: &str) -> Vec<Value> {
    let path = corpus_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_version(parser: Option<&str>, text: &str) -> Result<Version, String> {
    let parser = parser.unwrap_or("lenient");
    let result = if parser.starts_with("strict") {
        Version::parse_strict(text)
    } else if parser.starts_with("flux") {
        Version::parse_tag(text)
    } else {
        Version::parse_lenient(text)
    };
    result.map_err(|e| e.to_string())
}

#[test]
fn semver_constraints() {
    let cases = load("semver_constraints.json");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        if let Err(why) = semver_case(case) {
            failures.push(format!("{id}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

fn semver_case(case: &Value) -> Result<(), String> {
    let parser = case["version_parser"].as_str();
    let single = case["api"].as_str().is_some_and(|a| a.starts_with("single-comparator"));
    let expect_error = case["error"].as_bool() == Some(true);
    let error_in = case["error_in"].as_str();
    let constraint = match case["constraint"].as_str() {
        // The single-comparator API reads "" as "*"; the full parser refuses it.
        Some("") if single => Some(Constraint::parse("*")),
        Some(c) => Some(Constraint::parse(c)),
        None => None,
    };
    let version = case["version"].as_str().map(|v| parse_version(parser, v));
    if expect_error {
        return match error_in {
            Some("constraint") => match constraint {
                Some(Err(_)) => Ok(()),
                other => Err(format!("constraint should be rejected, got {other:?}")),
            },
            Some("version") => match version {
                Some(Err(_)) => Ok(()),
                other => Err(format!("version should be rejected, got {other:?}")),
            },
            other => Err(format!("unknown error_in {other:?}")),
        };
    }
    let constraint = constraint.transpose().map_err(|e| e.to_string())?;
    let version = version.transpose()?;
    if case["parses"].as_bool() == Some(true) {
        if let (Some(canonical), Some(v)) = (case["canonical"].as_str(), &version) {
            if v.to_string() != canonical {
                return Err(format!("canonical {v} != {canonical}"));
            }
        }
        if let Some(c) = &constraint {
            if let Some(n) = case["or_groups"].as_u64() {
                if c.groups().len() as u64 != n {
                    return Err(format!("{} groups, expected {n}", c.groups().len()));
                }
            }
            if let Some(n) = case["first_group_size"].as_u64() {
                if c.groups()[0].len() as u64 != n {
                    return Err(format!("first group has {}, expected {n}", c.groups()[0].len()));
                }
            }
            if let Some(cv) = case["constraint_version"].as_str() {
                let got = c.groups()[0][0].version().to_string();
                if got != cv {
                    return Err(format!("constraint version {got}, expected {cv}"));
                }
            }
        }
    }
    if let Some(expected) = case["matches"].as_bool() {
        let (Some(c), Some(v)) = (&constraint, &version) else {
            return Err("a match case needs a constraint and a version".into());
        };
        let got = c.explain(v);
        if got.is_ok() != expected {
            return Err(format!("{c} on {v}: expected {expected}, got {got:?}"));
        }
        if let (Some(msg), Err(got)) = (case["message"].as_str(), &got) {
            if msg != got {
                return Err(format!("message {got:?}, expected {msg:?}"));
            }
        }
    }
    Ok(())
}
