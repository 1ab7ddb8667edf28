//! Edits of GitOps files through the public API: what is refused (and left alone), and
//! property tests that an edit changes nothing outside the scalar and reads back.

use proptest::prelude::*;
use tagpromoter::image::{Digest, Repository, Tag};
use tagpromoter::manifest::{self, EditError, Outcome, Target, Wanted};

fn wanted(tag: &str) -> Wanted {
    Wanted {
        repository: Repository::new("ghcr.io/acme/app").unwrap(),
        tag: Tag::new(tag).unwrap(),
        digest: None,
        pin: false,
    }
}

fn helm(path: &str) -> Target {
    Target::Helm {
        tag: path.parse().unwrap(),
        repository: None,
        digest: None,
    }
}

fn kustomize() -> Target {
    Target::Kustomize {
        name: "ghcr.io/acme/app".into(),
    }
}

#[test]
fn refusals_name_the_place_and_what_to_do() {
    let cases: [(&str, Target, &str); 9] = [
        (
            "t: &t 1.0.0\nimage:\n  tag: *t\n",
            helm("image.tag"),
            "3:8: the value at image.tag is an alias",
        ),
        (
            "image:\n  tag: {a: 1}\n",
            helm("image.tag"),
            "2:8: the value at image.tag is a mapping, not a scalar",
        ),
        (
            "image:\n  tag: |\n    1.0.0\n",
            helm("image.tag"),
            "block scalar",
        ),
        (
            "image:\n  tag: \"1.0\\x2e0\"\n",
            helm("image.tag"),
            "escape sequences",
        ),
        (
            "image:\n  repo: x\n",
            helm("image.tag"),
            "values path image.tag not found; the mapping at 2:3 has no key \"tag\"",
        ),
        ("image: [\n", helm("image.tag"), "not valid YAML at 2:1"),
        (
            "images: [{name: other, newTag: '1'}]\n",
            kustomize(),
            "an images entry with name: ghcr.io/acme/app not found; its images: list is not a block list",
        ),
        (
            "images:\n- {name: ghcr.io/acme/app, newName: x}\n",
            kustomize(),
            "written in flow style",
        ),
        (
            "base: &b {tag: 1.0.0}\napp:\n  <<: *b\n",
            helm("app.tag"),
            "merge key",
        ),
    ];
    for (src, target, expected) in cases {
        let err = manifest::apply(src, &target, &wanted("2.0.0")).unwrap_err();
        assert!(err.to_string().contains(expected), "{src:?}: {err}");
    }
}

/// What a kustomization lacks is added as `kustomize edit set image` adds it, in the file's
/// style (issue 17); every other byte stays.
#[test]
fn a_kustomization_without_the_entry_gets_one() {
    let digest = format!("sha256:{}", "4".repeat(64));
    let pinned = Wanted {
        digest: Some(tagpromoter::image::Digest::new(&digest).unwrap()),
        pin: true,
        ..wanted("2.0.0")
    };
    let cases: Vec<(&str, Wanted, String)> = vec![
        // Another entry: ours goes first, in the list's style.
        (
            "images:\n- name: other\n  newTag: \"1\"\n",
            wanted("2.0.0"),
            "images:\n- name: ghcr.io/acme/app\n  newTag: 2.0.0\n- name: other\n  newTag: \"1\"\n".into(),
        ),
        // No images: at all: one at the end, dashes indented as resources: writes them.
        (
            "# overlay\nresources:\n  - ../base # shared\n",
            wanted("2.0.0"),
            "# overlay\nresources:\n  - ../base # shared\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 2.0.0\n".into(),
        ),
        // No final newline, CRLF line ends, and a tag YAML would read as a number.
        (
            "resources:\r\n- ../base",
            wanted("2.0"),
            "resources:\r\n- ../base\r\nimages:\r\n- name: ghcr.io/acme/app\r\n  newTag: \"2.0\"\r\n".into(),
        ),
        // An entry without newTag gets one, below its last key.
        (
            "images:\n  - name: ghcr.io/acme/app # ours\n    newName: ghcr.io/acme/app\n",
            wanted("2.0.0"),
            "images:\n  - name: ghcr.io/acme/app # ours\n    newName: ghcr.io/acme/app\n    newTag: 2.0.0\n".into(),
        ),
        // pinDigest on an entry without digest: one is added.
        (
            "images:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0\n",
            pinned.clone(),
            format!("images:\n- name: ghcr.io/acme/app\n  newTag: 2.0.0\n  digest: {digest}\n"),
        ),
    ];
    for (src, wanted, expected) in cases {
        let out = manifest::apply(src, &kustomize(), &wanted);
        assert_eq!(out, Ok(Outcome::Changed(expected)), "{src:?}");
    }
}

#[test]
fn an_edit_already_in_place_is_a_no_op() {
    let src = "image:\n  tag: 2.0.0 # pinned\n";
    assert_eq!(
        manifest::apply(src, &helm("image.tag"), &wanted("2.0.0")).unwrap(),
        Outcome::Unchanged
    );
}

#[test]
fn a_value_that_yaml_reads_as_a_number_is_quoted() {
    let src = "image:\n  tag: v1 # c\n";
    let Outcome::Changed(out) = manifest::apply(src, &helm("image.tag"), &wanted("1.10")).unwrap()
    else {
        panic!()
    };
    assert_eq!(out, "image:\n  tag: \"1.10\" # c\n");
    assert_eq!(
        manifest::read(&out, &helm("image.tag"))
            .unwrap()
            .tag
            .as_deref(),
        Some("1.10")
    );
}

#[test]
fn digests_are_written_when_pinned() {
    let digest = format!("sha256:{}", "b".repeat(64));
    let src = format!(
        "images:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0\n  digest: sha256:{}\n",
        "a".repeat(64)
    );
    let want = Wanted {
        digest: Some(Digest::new(&digest).unwrap()),
        pin: true,
        ..wanted("1.1.0")
    };
    let Outcome::Changed(out) = manifest::apply(&src, &kustomize(), &want).unwrap() else {
        panic!()
    };
    let now = manifest::read(&out, &kustomize()).unwrap();
    assert_eq!(now.tag.as_deref(), Some("1.1.0"));
    assert_eq!(now.digest.as_deref(), Some(digest.as_str()));
}

#[test]
fn markers_for_our_promotion_and_environment() {
    let src = "spec:\n  containers:\n  - image: ghcr.io/acme/app:1.0.0 # {\"$imagepolicy\": \"app:prod\"}\n  - image: ghcr.io/acme/app:1.0.0 # {\"$imagepolicy\": \"app:dev\"}\n";
    let target = Target::Marker {
        policy: "app:prod".into(),
    };
    let Outcome::Changed(out) = manifest::apply(src, &target, &wanted("1.2.0")).unwrap() else {
        panic!()
    };
    assert!(out.contains("app:1.2.0 # {\"$imagepolicy\": \"app:prod\"}"));
    assert!(out.contains("app:1.0.0 # {\"$imagepolicy\": \"app:dev\"}"));
    assert_eq!(
        manifest::read(&out, &target).unwrap().tag.as_deref(),
        Some("1.2.0")
    );
    let none = Target::Marker {
        policy: "app:qa".into(),
    };
    let err = manifest::apply(src, &none, &wanted("1.2.0")).unwrap_err();
    assert!(matches!(err, EditError::NotFound { .. }), "{err}");
}

#[test]
fn an_alias_bomb_in_a_gitops_file_costs_nothing() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..40 {
        let p = i - 1;
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    src.push_str("image:\n  tag: 1.0.0\n");
    let started = std::time::Instant::now();
    let Outcome::Changed(out) =
        manifest::apply(&src, &helm("image.tag"), &wanted("1.0.1")).unwrap()
    else {
        panic!()
    };
    assert!(out.ends_with("tag: 1.0.1\n"));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// A Helm values file with random comments, blank lines, quoting and line endings around
/// the tag.
fn values_file() -> impl Strategy<Value = (String, String)> {
    let comment = prop_oneof![
        Just(String::new()),
        "# [ -~]{0,20}".prop_map(|c| format!(" {c}"))
    ];
    let quote = prop_oneof![Just(""), Just("'"), Just("\"")];
    let blank = prop_oneof![Just(""), Just("\n"), Just("# note\n")];
    let eol = prop_oneof![Just("\n"), Just("\r\n")];
    let tag = "[a-z0-9][a-z0-9.-]{0,12}";
    (comment.clone(), quote, blank, eol, tag, comment, any::<bool>()).prop_map(|(c1, q, b, eol, tag, c2, final_newline)| {
        let mut text = format!("# values{eol}{b}image:{c1}{eol}  repository: ghcr.io/acme/app{eol}  tag: {q}{tag}{q}{c2}{eol}other: &o {{a: 1}}{eol}more: *o");
        if final_newline {
            text.push_str(eol);
        }
        (text, tag)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Only the tag's bytes change, and reading after writing gives the new tag.
    #[test]
    fn edits_touch_only_the_scalar((src, old) in values_file(), new in "[a-z0-9][a-z0-9.-]{0,12}") {
        let target = helm("image.tag");
        let want = wanted(&new);
        let before = manifest::read(&src, &target).unwrap();
        prop_assert_eq!(before.tag.as_deref(), Some(old.as_str()));
        match manifest::apply(&src, &target, &want).unwrap() {
            Outcome::Unchanged => prop_assert_eq!(&old, &new),
            Outcome::Changed(out) => {
                let at = src.find("tag: ").unwrap() + 5;
                // Everything before the scalar is identical…
                prop_assert_eq!(&out[..at], &src[..at]);
                // …and so is everything after it (the old token and its quotes, if any).
                let old_token_end = src[at..].find(['\r', '\n', ' ']).map_or(src.len(), |i| at + i);
                let new_token_end = out[at..].find(['\r', '\n', ' ']).map_or(out.len(), |i| at + i);
                prop_assert_eq!(&out[new_token_end..], &src[old_token_end..]);
                let after = manifest::read(&out, &target).unwrap();
                prop_assert_eq!(after.tag.as_deref(), Some(new.as_str()));
            }
        }
    }
}

#[test]
fn kustomize_new_name_is_never_written() {
    let src = "images:\n- name: app\n  newName: registry.old/acme/app\n  newTag: 1.0.0\n";
    let target = Target::Kustomize { name: "app".into() };
    let Outcome::Changed(out) = manifest::apply(src, &target, &wanted("1.1.0")).unwrap() else {
        panic!()
    };
    assert_eq!(
        out,
        "images:\n- name: app\n  newName: registry.old/acme/app\n  newTag: 1.1.0\n"
    );
    let src = "images:\n- name: app\n  newTag: 1.0.0\n";
    let Outcome::Changed(out) = manifest::apply(src, &target, &wanted("1.1.0")).unwrap() else {
        panic!()
    };
    assert_eq!(out, "images:\n- name: app\n  newTag: 1.1.0\n");
}

/// Targets that rewrite several places together (`manifest`, `marker`) read what they
/// rewrite: when a person edited one place, reading and editing both refuse, naming both
/// places, instead of reading the first and overwriting the rest.
#[test]
fn places_rewritten_together_that_disagree_are_refused() {
    let manifests = "spec:\n  containers:\n    - image: ghcr.io/acme/app:1.0.0\n    - image: ghcr.io/acme/app:1.0.1 # a person's hotfix\n";
    let image_field = Target::ImageField {
        repository: Repository::new("ghcr.io/acme/app").unwrap(),
    };
    let marked = "a:\n  tag: 1.0.0 # {\"$imagepolicy\": \"app:prod:tag\"}\nb:\n  tag: 1.0.1 # {\"$imagepolicy\": \"app:prod:tag\"}\n";
    let marker = Target::Marker {
        policy: "app:prod".into(),
    };
    for (src, target, places) in [
        (manifests, image_field, ("3:14", "4:14")),
        (marked, marker, ("2:8", "4:8")),
    ] {
        for err in [
            manifest::read(src, &target).unwrap_err(),
            manifest::apply(src, &target, &wanted("2.0.0")).unwrap_err(),
        ] {
            assert!(matches!(err, EditError::Disagree { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(places.0) && text.contains(places.1) && text.contains("1.0.1"),
                "{text}"
            );
        }
    }
}

/// A key added to the entry on a file's last line, where the file has no final line break
/// (kustomize's own images example): below it, and the file still ends without one.
#[test]
fn a_key_is_added_to_the_last_entry_of_a_file_without_a_final_newline() {
    let digest = format!("sha256:{}", "5".repeat(64));
    let want = Wanted {
        digest: Some(Digest::new(&digest).unwrap()),
        ..wanted("2.0.0")
    };
    let src =
        "images:\n- name: ghcr.io/acme/app\n  newName: ghcr.io/acme/app2\n  digest: sha256:25a0d4";
    let Outcome::Changed(out) = manifest::apply(src, &kustomize(), &want).unwrap() else {
        panic!()
    };
    assert_eq!(
        out,
        format!(
            "images:\n- name: ghcr.io/acme/app\n  newName: ghcr.io/acme/app2\n  digest: {digest}\n  newTag: 2.0.0"
        )
    );
}

/// What a fresh-eyes review of issue 27 found (each once landed a bump that changed another
/// image or nothing, or left a pinned digest behind): each row is a file, the target, and
/// what the bump must leave (`Ok`: the file as expected) or the refusal it must give.
#[test]
fn edits_that_would_move_another_image_or_nothing_are_refused() {
    let d1 = format!("sha256:{}", "1".repeat(64));
    let d2 = format!("sha256:{}", "2".repeat(64));
    let want = Wanted {
        digest: Some(Digest::new(&d2).unwrap()),
        ..wanted("1.1.0")
    };
    let marker = |policy: &str| Target::Marker {
        policy: policy.into(),
    };
    let argocd = Target::ArgocdSource {
        repository: Repository::new("ghcr.io/acme/app").unwrap(),
        parameter: "image.tag".into(),
    };
    let rows: Vec<(&str, String, Target, Result<String, &str>)> = vec![
        (
            "a tag shared through an anchor",
            "images:\n- name: ghcr.io/acme/app\n  newTag: &v 1.0.0\n- name: ghcr.io/acme/side\n  newTag: *v\n".into(),
            kustomize(),
            Err("anchored (&) and used again at 5:11"),
        ),
        (
            "an entry named with its tag is the image's",
            "images:\n- name: ghcr.io/acme/app:0.1.0\n  newTag: 1.0.0\n".into(),
            kustomize(),
            Ok("images:\n- name: ghcr.io/acme/app:0.1.0\n  newTag: 1.1.0\n".into()),
        ),
        (
            "an entry in a second document does nothing to kustomize",
            "resources: [a.yaml]\n---\nimages:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0\n".into(),
            kustomize(),
            Err("kustomize reads only the first"),
        ),
        (
            "an entry below renames other containers to the image",
            "images:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0\n- name: app\n  newName: ghcr.io/acme/app\n".into(),
            kustomize(),
            Err("the images entry \"app\" renames its containers to ghcr.io/acme/app after"),
        ),
        (
            "a :tag marker with a digest pinned beside it",
            format!("images:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0 # {{\"$imagepolicy\": \"ns:app:tag\"}}\n  digest: {d1}\n"),
            marker("ns:app"),
            Ok(format!("images:\n- name: ghcr.io/acme/app\n  newTag: 1.1.0 # {{\"$imagepolicy\": \"ns:app:tag\"}}\n  digest: {d2}\n")),
        ),
        (
            "a tag marked as a whole reference",
            "images:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0 # {\"$imagepolicy\": \"ns:app\"}\n".into(),
            marker("ns:app"),
            Err("is marked as a whole reference"),
        ),
        (
            "Argo CD parameters naming another image",
            "helm:\n  parameters:\n  - name: image.name\n    value: docker.io/library/redis\n  - name: image.tag\n    value: 1.0.0\n".into(),
            argocd.clone(),
            Err("names docker.io/library/redis, not ghcr.io/acme/app"),
        ),
        (
            "Argo CD parameters pinning a digest",
            format!("helm:\n  parameters:\n  - name: image.name\n    value: ghcr.io/acme/app\n  - name: image.tag\n    value: 1.0.0\n  - name: image.digest\n    value: {d1}\n"),
            argocd,
            Ok(format!("helm:\n  parameters:\n  - name: image.name\n    value: ghcr.io/acme/app\n  - name: image.tag\n    value: 1.1.0\n  - name: image.digest\n    value: {d2}\n")),
        ),
        (
            "Helm values that name the repository `name`",
            "image:\n  name: docker.io/library/redis\n  tag: 1.0.0\n".into(),
            helm("image.tag"),
            Err("names docker.io/library/redis, not ghcr.io/acme/app"),
        ),
        (
            "a Helm digest written with its @",
            format!("image:\n  repository: ghcr.io/acme/app\n  tag: 1.0.0\n  digest: \"@{d1}\"\n"),
            helm("image.tag"),
            Ok(format!("image:\n  repository: ghcr.io/acme/app\n  tag: 1.1.0\n  digest: \"@{d2}\"\n")),
        ),
        (
            "newTag: ~ sets no tag",
            "images:\n- name: ghcr.io/acme/app\n  newTag: ~\n".into(),
            kustomize(),
            Ok("images:\n- name: ghcr.io/acme/app\n  newTag: 1.1.0\n".into()),
        ),
    ];
    for (what, src, target, expected) in rows {
        let got = manifest::apply(&src, &target, &want);
        match (got, expected) {
            (Ok(Outcome::Changed(out)), Ok(text)) => assert_eq!(out, text, "{what}"),
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{what}: {e}"),
            (got, expected) => panic!("{what}: {got:?}, expected {expected:?}"),
        }
    }
    // What the entry named with its tag runs: its newTag (kustomize matches `app:0.1.0`).
    let src = "images:\n- name: ghcr.io/acme/app:0.1.0\n  newTag: 2.0.0\n";
    let current = manifest::read(src, &kustomize()).unwrap();
    assert_eq!(current.tag.as_deref(), Some("2.0.0"));
}
