//! The small grammars of rules values: names, durations, repository paths, templates.

use std::path::{Component, Path, PathBuf};

use jiff::SignedDuration;

/// Names used in trailers and markers: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, up to 63 characters.
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The group names and numbers a template such as `$1`, `$name` or `${name}` refers to.
pub(super) fn template_groups(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(stripped) = rest.strip_prefix('$') {
            rest = stripped;
            continue;
        }
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => break,
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if !name.is_empty() {
            out.push(name.to_string());
        }
        rest = after;
    }
    out
}

/// A repository-relative path: not absolute, no `..`, not empty.
pub(super) fn check_repo_path(text: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(text);
    if text.is_empty() {
        return Err("is empty");
    }
    if text.contains('\\') || text.contains('\0') {
        return Err("must use / as separator");
    }
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; give a path relative to the repository root");
            }
            Component::ParentDir => {
                return Err("leaves the repository (..); give a path inside it");
            }
            _ => {}
        }
    }
    let clean: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if clean.as_os_str().is_empty() {
        return Err("names the repository root, not a file");
    }
    Ok(clean)
}

/// `1h30m`, `90s`, `15m`, `2d`, `1w`, `500ms`: numbers with units, summed.
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let mut total = SignedDuration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(total);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds: i64 = match &rest[..unit_len] {
            "ms" => {
                total = total.checked_add(SignedDuration::from_millis(n))?;
                rest = &rest[unit_len..];
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return None,
        };
        total = total.checked_add(SignedDuration::from_secs(n.checked_mul(seconds)?))?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("2d"), Some(SignedDuration::from_hours(48)));
        assert_eq!(
            parse_duration("500ms"),
            Some(SignedDuration::from_millis(500))
        );
        assert_eq!(parse_duration("0"), Some(SignedDuration::ZERO));
        for bad in ["", "1", "h", "1x", "1.5h", "-1h", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn repo_paths_stay_inside() {
        assert_eq!(
            check_repo_path("./apps/x.yaml").unwrap(),
            PathBuf::from("apps/x.yaml")
        );
        for bad in ["/etc/passwd", "../x", "apps/../../x", "", ".", "a\\b"] {
            assert!(check_repo_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_group_names() {
        assert_eq!(template_groups("$1-${name}$$x$ts"), vec!["1", "name", "ts"]);
    }
}
