//! `tagpromoter tags IMAGE`: a person's probe of what tagpromoter sees in a registry, with
//! the same credentials and pacing as the worker (from `--rules`).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::{Cli, OutputFormat, TagsArgs};
use crate::image::ImageFacts;
use crate::image::Repository;
use crate::registry::{Registry, RegistryError};
use crate::rules;

use super::{EXIT_FAILED, EXIT_INVALID};

/// One row of the output.
#[derive(serde::Serialize)]
struct Row {
    tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platforms: Option<Vec<String>>,
}

/// List the tags of `args.image`.
pub fn run(cli: &Cli, args: &TagsArgs) -> ExitCode {
    let image = match Repository::new(&args.image) {
        Ok(r)
            if !args.image.contains('@')
                && !args
                    .image
                    .rsplit('/')
                    .next()
                    .is_some_and(|l| l.contains(':')) =>
        {
            r
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "{:?} is not an image repository; give it without a tag, e.g. ghcr.io/stefanprodan/podinfo",
                args.image
            );
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let registry = match registry_for(cli) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let deadline =
        std::time::Duration::try_from(cli.registry_timeout).unwrap_or(std::time::Duration::MAX);
    let listed = runtime.block_on(async {
        tokio::time::timeout(deadline, collect(Arc::new(registry), image.clone(), args))
            .await
            .unwrap_or_else(|_| {
                Err(RegistryError::timed_out(
                    &image,
                    "listing tags of",
                    &format!("--registry-timeout ({}s)", deadline.as_secs()),
                ))
            })
    });
    match listed {
        Ok((rows, dropped)) => {
            print(&rows, &dropped, args);
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// A registry client with the rules' registry settings; anonymous when there are no rules.
fn registry_for(cli: &Cli) -> Result<Registry, ExitCode> {
    let built = if cli.rules.is_dir() {
        match rules::load_dir(&cli.rules) {
            Ok(r) => Registry::from_settings(&r.settings),
            Err(diags) => return Err(super::report_invalid(cli, &diags)),
        }
    } else {
        tracing::info!(rules = %cli.rules.display(), "no rules directory; registries are accessed anonymously over https");
        Registry::new(Default::default(), Default::default())
    };
    built
        .map(|r| r.with_cache_dir(&cli.cache_dir()))
        .map_err(|e| {
            let _ = writeln!(std::io::stderr(), "{e}");
            ExitCode::from(EXIT_FAILED)
        })
}

async fn collect(
    registry: Arc<Registry>,
    image: Repository,
    args: &TagsArgs,
) -> Result<(Vec<Row>, Vec<String>), RegistryError> {
    let list = registry.tags(&image).await?;
    let want_facts = args.digests || args.created || args.platforms;
    let mut rows: Vec<Row> = list
        .tags
        .iter()
        .map(|t| Row {
            tag: t.to_string(),
            digest: None,
            created: None,
            platforms: None,
        })
        .collect();
    if want_facts {
        // Fetched concurrently; the registry's pacing bounds what reaches the host.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, tag) in list.tags.iter().enumerate() {
            let (registry, image, tag) = (Arc::clone(&registry), image.clone(), tag.clone());
            tasks.spawn(async move { (i, registry.facts(&image, &tag).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, result)) = joined else { continue };
            let facts: ImageFacts = result?;
            let row = &mut rows[i];
            row.digest = args.digests.then(|| facts.digest.to_string());
            row.created = if args.created {
                Some(
                    facts
                        .created
                        .map_or_else(|| "-".to_string(), |c| c.to_string()),
                )
            } else {
                None
            };
            row.platforms = args.platforms.then_some(facts.platforms);
        }
    }
    Ok((rows, list.dropped.clone()))
}

fn print(rows: &[Row], dropped: &[String], args: &TagsArgs) {
    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({ "tags": rows, "dropped": dropped });
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
        }
        OutputFormat::Text => {
            for r in rows {
                let mut line = r.tag.clone();
                for c in [&r.digest, &r.created].into_iter().flatten() {
                    line.push('\t');
                    line.push_str(c);
                }
                if let Some(p) = &r.platforms {
                    line.push('\t');
                    line.push_str(&p.join(","));
                }
                let _ = writeln!(out, "{line}");
            }
            if !dropped.is_empty() {
                let _ = writeln!(
                    std::io::stderr(),
                    "{} names were not valid OCI tags and were dropped",
                    dropped.len()
                );
            }
        }
    }
}
