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
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn semver_case(case: &Value) -> Result<(), String> {
    let parser = case["version_parser"].as_str();
    let single = case["api"]
        .as_str()
        .is_some_and(|a| a.starts_with("single-comparator"));
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
        if let (Some(canonical), Some(v)) = (case["canonical"].as_str(), &version)
            && v.to_string() != canonical
        {
            return Err(format!("canonical {v} != {canonical}"));
        }
        if let Some(c) = &constraint {
            if let Some(n) = case["or_groups"].as_u64()
                && c.groups().len() as u64 != n
            {
                return Err(format!("{} groups, expected {n}", c.groups().len()));
            }
            if let Some(n) = case["first_group_size"].as_u64()
                && c.groups()[0].len() as u64 != n
            {
                return Err(format!(
                    "first group has {}, expected {n}",
                    c.groups()[0].len()
                ));
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
        if let (Some(msg), Err(got)) = (case["message"].as_str(), &got)
            && msg != got.0
        {
            return Err(format!("message {got:?}, expected {msg:?}"));
        }
    }
    Ok(())
}

#[test]
fn tag_policies() {
    let cases = load("tag_policies.json");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let expected = case["expected"].as_str();
        let got = tag_policy_case(case);
        let ok = match (&got, expected) {
            (Ok(Some(w)), Some(e)) => w == e,
            (Ok(None) | Err(_), None) => case["error"].as_bool() == Some(true),
            _ => false,
        };
        if !ok {
            failures.push(format!("{id}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The winner, `Ok(None)` when nothing qualifies, `Err` when the policy itself fails.
fn tag_policy_case(case: &Value) -> Result<Option<String>, String> {
    use tagpromoter::policy::{Direction, Filter, Order, TagPolicy};
    let p = &case["policy"];
    let direction = || match p["order"].as_str() {
        None | Some("asc") => Ok(Direction::Asc),
        Some("desc") => Ok(Direction::Desc),
        Some(other) => Err(format!("invalid order {other:?}")),
    };
    let order = match p["kind"].as_str() {
        Some("semver") => Order::Semver {
            range: Constraint::parse(p["range"].as_str().unwrap_or(""))
                .map_err(|e| e.to_string())?,
            loose: p["loose"].as_bool().unwrap_or(false),
        },
        Some("alphabetical") => Order::Alphabetical(direction()?),
        Some("numerical") => Order::Numerical(direction()?),
        other => return Err(format!("unknown policy kind {other:?}")),
    };
    let regex = |s: &str| {
        regex::Regex::new(s)
            .map(std::sync::Arc::new)
            .map_err(|e| e.to_string())
    };
    let exclude = p["exclude"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(regex)
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let filter = match p["filter"].as_object() {
        None => None,
        Some(f) => Some(Filter {
            pattern: regex(f["pattern"].as_str().unwrap_or(""))?,
            extract: f.get("extract").and_then(Value::as_str).map(str::to_string),
        }),
    };
    let policy = TagPolicy {
        exclude,
        filter,
        order,
    };
    let tags: Vec<String> = case["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let selection = policy.select(&tags, &|_| None);
    // Flux fails a numerical policy as a whole on one tag that is not a number; tagpromoter
    // rejects that tag alone (it is no candidate, and `plan` says why). The corpus records
    // Flux's outcome: the same tags must be the ones found wanting.
    let flux = case["profile"].as_str() == Some("flux");
    if flux
        && let Some((tag, why)) = selection
            .rejected
            .iter()
            .find(|(_, r)| matches!(r, tagpromoter::policy::Rejection::NotANumber { .. }))
    {
        return Err(format!("{tag}: {why}"));
    }
    Ok(selection.winner().cloned())
}

#[test]
fn yaml_rewrites() {
    let dir = corpus_dir().join("yaml_rewrites");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for case_dir in &cases {
        if let Err(why) = rewrite_case(case_dir) {
            failures.push(format!("{}: {why}", case_dir.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn rewrite_case(dir: &std::path::Path) -> Result<(), String> {
    use tagpromoter::image::{Digest, ImageRef, Repository, Tag};
    use tagpromoter::manifest::{helm, image_field, kustomize, marker, patch};
    let read =
        |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let case: Value = serde_json::from_str(&read("case.json")?).map_err(|e| e.to_string())?;
    let input = read("input.yaml")?;
    let expected = read("expected.yaml")?;
    let docs = tagpromoter::yaml::parse(&input).map_err(|e| e.to_string())?;
    let s = |v: &Value| v.as_str().map(str::to_string);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut insertions = Vec::new();
    let replacements = match case["kind"].as_str() {
        Some("setter-marker") => {
            let mut policies = Vec::new();
            for (id, r) in case["policies"].as_object().into_iter().flatten() {
                let r = ImageRef::parse(r.as_str().unwrap_or("")).map_err(|e| err(&e))?;
                policies.push((id.clone(), r));
            }
            marker::replacements(&input, &docs, &policies)
        }
        Some("kustomize") => {
            let change = kustomize::Change {
                new_tag: s(&case["newTag"])
                    .map(|t| Tag::new(&t))
                    .transpose()
                    .map_err(|e| err(&e))?,
                new_name: s(&case["newName"])
                    .map(|t| Repository::new(&t))
                    .transpose()
                    .map_err(|e| err(&e))?,
                digest: s(&case["digest"])
                    .map(|t| Digest::new(&t))
                    .transpose()
                    .map_err(|e| err(&e))?,
                tag_carries_digest: false,
            };
            kustomize::edits(&input, &docs, case["image"].as_str().unwrap_or(""), &change).map(
                |(replacements, inserted)| {
                    insertions = inserted;
                    replacements
                },
            )
        }
        Some("helm") => {
            let list = match case["edits"].as_array() {
                Some(edits) => edits.clone(),
                None => vec![case.clone()],
            };
            let mut edits = Vec::new();
            for e in &list {
                let path: helm::HelmPath = e["tagPath"]
                    .as_str()
                    .unwrap_or("")
                    .parse()
                    .map_err(|e| err(&e))?;
                let value = Tag::new(e["value"].as_str().unwrap_or("")).map_err(|e| err(&e))?;
                edits.push((path, value.to_string()));
            }
            helm::replacements(&docs, &edits)
        }
        Some("image-field") => {
            let repo =
                Repository::new(case["image"].as_str().unwrap_or("")).map_err(|e| err(&e))?;
            let tag = Tag::new(case["newTag"].as_str().unwrap_or("")).map_err(|e| err(&e))?;
            image_field::replacements(&docs, &repo, &tag, None)
        }
        other => return Err(format!("unknown kind {other:?}")),
    }
    .map_err(|e| err(&e))?;
    let out = patch::apply_all(&input, &replacements, &insertions).map_err(|e| err(&e))?;
    let changed = case["changed"].as_bool().unwrap_or(true);
    match (out, changed) {
        (None, false) => Ok(()),
        (None, true) => Err("nothing changed, expected a change".into()),
        (Some(_), false) => Err("the file changed, expected a no-op".into()),
        (Some(text), true) if text == expected => Ok(()),
        (Some(text), true) => Err(format!(
            "output differs:\n--- got\n{text}\n--- expected\n{expected}"
        )),
    }
}
