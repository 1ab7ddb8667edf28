//! A snapshot grown from the one kept on disk says what a whole read from a fresh cache
//! says, over random histories on a real bare repository: people's edits (up, down,
//! unparseable, deleted files), our records with and without a `Tagpromoter-Target`,
//! unrelated commits and merges, a few at a time between reads.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use tagpromoter::gitops::git::RemoteAuth;
use tagpromoter::gitops::message::{Actor, Record};
use tagpromoter::gitops::store::Author;
use tagpromoter::gitops::{Repo, RepoConfig, Snapshot, TargetQuery};
use tagpromoter::image::{Repository, Tag};
use tagpromoter::manifest::Target;

use crate::support::git::{bare_repo, git};

const IMAGE: &str = "ghcr.io/example/app";
const FILES: [&str; 3] = [
    "apps/app/dev/kustomization.yaml",
    "apps/app/prod/kustomization.yaml",
    "apps/app/prod/also.yaml",
];

fn overlay(tag: &str) -> String {
    format!("# kept as written\nimages:\n  - name: {IMAGE}\n    newTag: \"{tag}\" # bumped\n")
}

/// One commit made between two reads.
#[derive(Debug, Clone)]
enum Change {
    /// A person sets a file's tag.
    Edit { file: usize, tag: u8 },
    /// A person breaks a file's YAML.
    Break { file: usize },
    /// A person deletes a file.
    Delete { file: usize },
    /// Our record of setting a file's tag, naming its target or (as before the trailer
    /// existed) only the promotion and environment.
    Ours { file: usize, tag: u8, named: bool },
    /// A commit to a file no query reads.
    Unrelated,
    /// A side branch with an edit, merged.
    Merge { file: usize, tag: u8 },
}

fn change() -> impl Strategy<Value = Change> {
    let file = 0..FILES.len();
    prop_oneof![
        4 => (file.clone(), 0u8..6).prop_map(|(file, tag)| Change::Edit { file, tag }),
        1 => file.clone().prop_map(|file| Change::Break { file }),
        1 => file.clone().prop_map(|file| Change::Delete { file }),
        4 => (file.clone(), 0u8..6, prop::bool::weighted(0.8))
            .prop_map(|(file, tag, named)| Change::Ours { file, tag, named }),
        3 => Just(Change::Unrelated),
        1 => (file, 0u8..6).prop_map(|(file, tag)| Change::Merge { file, tag }),
    ]
}

fn queries() -> Arc<Vec<TargetQuery>> {
    let kustomize = || Target::Kustomize { name: IMAGE.into() };
    let query = |file: &str, env: &str, others: Vec<&str>| TargetQuery {
        file: file.into(),
        target: kustomize(),
        id: format!("{file}#images[name={IMAGE}]"),
        names: ("app".into(), env.into()),
        others: others
            .into_iter()
            .map(|f| (f.into(), kustomize()))
            .collect(),
        identity: tagpromoter::rules::Identity {
            repository: "test".into(),
            branch: "main".into(),
        },
        shared: false,
    };
    Arc::new(vec![
        query(FILES[0], "dev", vec![]),
        // Prod writes two files, which must agree.
        query(FILES[1], "prod", vec![FILES[2]]),
    ])
}

fn environment(file: usize) -> &'static str {
    if file == 0 { "dev" } else { "prod" }
}

/// Make `change` in the clone at `work` and push it.
fn commit(work: &Path, change: &Change, step: usize) {
    let write = |file: usize, text: &str| {
        let path = work.join(FILES[file]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        git(work, &["add", "-A"]);
    };
    let message = match change {
        Change::Edit { file, tag } => {
            write(*file, &overlay(&format!("1.{tag}.0")));
            format!("set {} by hand", FILES[*file])
        }
        Change::Break { file } => {
            write(*file, "images: [\n  - {broken\n");
            "broken by hand".to_string()
        }
        Change::Delete { file } => {
            let _ = std::fs::remove_file(work.join(FILES[*file]));
            git(work, &["add", "-A"]);
            "deleted by hand".to_string()
        }
        Change::Ours { file, tag, named } => {
            let to = format!("1.{tag}.0");
            write(*file, &overlay(&to));
            let record = Record {
                promotion: "app".into(),
                environment: environment(*file).into(),
                image: Repository::new(IMAGE).unwrap(),
                from: None,
                to: Some(Tag::new(&to).unwrap()),
                digest: None,
                actor: Actor::Bot,
                reason: None,
                forced: false,
                hold: None,
                target: named.then(|| queries()[usize::from(*file > 0)].id.clone()),
                identity: None,
            };
            record.message()
        }
        Change::Unrelated => {
            std::fs::write(work.join("README.md"), format!("step {step}\n")).unwrap();
            git(work, &["add", "-A"]);
            "unrelated".to_string()
        }
        Change::Merge { file, tag } => {
            git(work, &["checkout", "-qb", &format!("side-{step}")]);
            write(*file, &overlay(&format!("2.{tag}.0")));
            git(
                work,
                &["commit", "-q", "--allow-empty", "-m", "on a branch"],
            );
            git(work, &["checkout", "-q", "main"]);
            git(
                work,
                &[
                    "merge",
                    "-q",
                    "--no-ff",
                    "-m",
                    "merge",
                    &format!("side-{step}"),
                ],
            );
            git(work, &["push", "-q", "origin", "main"]);
            return;
        }
    };
    git(work, &["commit", "-q", "--allow-empty", "-m", &message]);
    git(work, &["push", "-q", "origin", "main"]);
}

fn config(url: &str, cache: &Path) -> RepoConfig {
    RepoConfig {
        url: url.to_string(),
        branch: "main".into(),
        auth: RemoteAuth::None,
        author: Author {
            name: "tagpromoter".into(),
            email: "tagpromoter@example.com".into(),
        },
        cache_dir: cache.to_path_buf(),
        depth: None,
        max_attempts: 3,
        git_timeout: std::time::Duration::from_secs(60),
        lock_timeout: std::time::Duration::from_secs(60),
        keep_snapshot: false,
        render: tagpromoter::rules::RenderMode::Auto,
    }
}

/// What a snapshot says, but for how many commits were walked to say it.
fn said(snapshot: &Snapshot) -> serde_json::Value {
    let mut value = serde_json::to_value(snapshot).unwrap();
    value.as_object_mut().unwrap().remove("walked");
    value
}

async fn read(url: &str, cache: &Path) -> Arc<Snapshot> {
    Repo::open(config(url, cache))
        .await
        .unwrap()
        .snapshot(queries(), |_| true)
        .await
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_grown_snapshot_says_what_a_whole_read_says(
        steps in prop::collection::vec(prop::collection::vec(change(), 1..4), 1..7)
    ) {
        let base = tempfile::tempdir().unwrap();
        let seeded: Vec<(&str, String)> = FILES
            .iter()
            .map(|f| (*f, overlay("1.0.0")))
            .chain([("README.md", "app\n".to_string())])
            .collect();
        let refs: Vec<(&str, &str)> = seeded.iter().map(|(f, t)| (*f, t.as_str())).collect();
        let bare = bare_repo(base.path(), "grow", &refs);
        let url = format!("file://{}", bare.display());
        let work = base.path().join("work");
        git(base.path(), &["clone", "-q", bare.to_str().unwrap(), "work"]);
        let warm = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(read(&url, warm.path()));
        for (i, changes) in steps.iter().enumerate() {
            for (j, change) in changes.iter().enumerate() {
                commit(&work, change, i * 10 + j);
            }
            let fresh = tempfile::tempdir().unwrap();
            let (grown, whole) = runtime.block_on(async {
                (read(&url, warm.path()).await, read(&url, fresh.path()).await)
            });
            prop_assert_eq!(said(&grown), said(&whole), "after {:?}", &steps[..=i]);
        }
    }
}
