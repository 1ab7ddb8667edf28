//! Hardening, round two (issue 29): what anyone who can edit a file the bot reads, or reach
//! its ports, can make the worker spend. Each attack runs against the real binary, its own
//! peak memory read from `/proc`; the worker's pod is limited to 256 MiB and must stay under
//! 128 MiB through all of them.

use crate::engine::{INITIAL, app_registry, kustomization};
use crate::support::git::bare_repo_at;
use crate::support::run_watching_memory;

/// The most the worker may use through any of these attacks, in KiB.
const PEAK_KIB: u64 = 128 * 1024;

/// A target file of 100 MiB of blank lines (a few hundred KiB in the repository, as Git
/// compresses it): its size is read from the object's header and the file refused, naming
/// it and its size, never inflated — the environment fails alone, the other one is bumped.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_target_file_is_refused_unread_and_the_others_go_on() {
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let huge = format!(
        "{}{}",
        kustomization(&image, "1.0.0"),
        "\n".repeat(100 << 20)
    );
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[
            ("deploy/dev/kustomization.yaml", &huge),
            (
                "deploy/prod/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            ),
        ],
        Some(INITIAL),
    );
    drop(huge);
    let rules = tempfile::tempdir().unwrap();
    let registry = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{registry}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }} }}\n    - {{ name: prod, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/prod/kustomization.yaml }} }} }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (out, peak) = run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "once".as_ref(),
    ])
    .await;
    eprintln!("once over a 100 MiB target: peak RSS {peak} KiB\n{out}");
    assert!(
        out.contains("deploy/dev/kustomization.yaml")
            && out.contains("100.0 MiB, over the 8.0 MiB a file may be"),
        "{out}"
    );
    let prod = crate::support::git::git(&bare, &["show", "main:deploy/prod/kustomization.yaml"]);
    assert!(prod.contains("newTag: 1.1.0"), "prod went on: {prod}");
    assert!(peak < PEAK_KIB, "once peaked at {peak} KiB");
}

/// A directory on a target's path with 700,000 entries (one shared blob, a 25 MiB tree
/// object): refused from its header with its size, never decoded.
#[tokio::test(flavor = "multi_thread")]
async fn a_directory_with_absurdly_many_entries_is_refused_unread() {
    let (_registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[(
            "deploy/dev/kustomization.yaml",
            &kustomization(&image, "1.0.0"),
        )],
        Some(INITIAL),
    );
    // deploy/ gains 700,000 more entries, written as objects directly.
    let git = |args: &[&str], input: Option<&str>| {
        let mut child = std::process::Command::new("git")
            .args(args)
            .current_dir(&bare)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let deploy = git(&["rev-parse", "main:deploy"], None);
    let listed = git(&["ls-tree", &deploy], None);
    let blob = git(&["hash-object", "-w", "--stdin"], Some("x\n"));
    let mut entries = format!("{listed}\n");
    for i in 0..700_000 {
        entries.push_str(&format!("100644 blob {blob}\tf{i:07}\n"));
    }
    let big = git(&["mktree", "--missing"], Some(&entries));
    let root = git(&["ls-tree", "main"], None).replace(&deploy, &big);
    let root = git(&["mktree"], Some(&format!("{root}\n")));
    let parent = git(&["rev-parse", "main"], None);
    let commit = git(
        &["commit-tree", &root, "-p", &parent, "-m", "many files"],
        Some(""),
    );
    git(&["update-ref", "refs/heads/main", &commit], None);
    let rules = tempfile::tempdir().unwrap();
    let registry = image.split('/').next().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{registry}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }} }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (out, peak) = run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "once".as_ref(),
    ])
    .await;
    eprintln!("once over a 700,000-entry directory: peak RSS {peak} KiB\n{out}");
    assert!(
        out.contains("reading deploy: it is")
            && out.contains("over the 16.0 MiB a directory may be"),
        "{out}"
    );
    assert!(peak < PEAK_KIB, "once peaked at {peak} KiB");
}
