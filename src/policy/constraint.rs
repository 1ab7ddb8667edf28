//! Version constraints with Masterminds/semver v3 semantics (the ranges Flux, Argo CD Image
//! Updater and Helm users already write): `||` between groups, comparators inside a group
//! separated by commas or blanks, `x`/`*` wildcards, `~`, `^`, hyphen ranges, and the
//! prerelease rule: a prerelease version only satisfies a comparator that itself names a
//! prerelease (`>=1.0.0-0` opts in, `>=1.0.0` does not).

use std::fmt;

use super::version::{Version, compare_prerelease};

/// A parsed constraint such as `^1.2`, `>=1.0.0-0 <2`, or `1.x || >=3`. Cloning shares it
/// (a fleet's thousands of environments mostly write the same few ranges, and every
/// decision takes one).
#[derive(Debug, Clone)]
pub struct Constraint(std::sync::Arc<Parsed>);

#[derive(Debug)]
struct Parsed {
    groups: Vec<Vec<Comparator>>,
    text: String,
}

/// Why a constraint string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver range {text:?}: {reason}")]
pub struct ConstraintError {
    /// The constraint as written.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

/// One comparator: an operator and a version, where missing or `x` parts make it "dirty".
#[derive(Debug, Clone)]
pub struct Comparator {
    op: Op,
    version: Version,
    /// The version as written, for messages (`4.x`).
    orig: String,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

impl Comparator {
    /// The version the comparator compares with (wildcards read as zero).
    pub fn version(&self) -> &Version {
        &self.version
    }
}

/// Why a version does not satisfy a constraint, in Masterminds' words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsatisfied(pub String);

impl Constraint {
    /// Parse a constraint with Masterminds' `NewConstraint` rules (the empty string is refused).
    pub fn parse(text: &str) -> Result<Self, ConstraintError> {
        let err = |reason: String| ConstraintError {
            text: text.to_string(),
            reason,
        };
        let mut groups = Vec::new();
        for group in text.split("||") {
            let comparators = parse_group(group).map_err(err)?;
            groups.push(comparators);
        }
        Ok(Self(std::sync::Arc::new(Parsed {
            groups,
            text: text.to_string(),
        })))
    }

    /// The OR-ed groups of AND-ed comparators.
    pub fn groups(&self) -> &[Vec<Comparator>] {
        &self.0.groups
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.explain(v).is_ok()
    }

    /// `Ok` when `v` satisfies the constraint, else why not (the first failure, as
    /// Masterminds words it: "1.2.3 is less than 2").
    pub fn explain(&self, v: &Version) -> Result<(), Unsatisfied> {
        self.first_failure(v).map_err(Unsatisfied)
    }

    fn first_failure(&self, v: &Version) -> Result<(), String> {
        let mut first = None;
        for group in &self.0.groups {
            match group.iter().map(|c| c.check(v)).find(Result::is_err) {
                None => return Ok(()),
                Some(Err(e)) => {
                    first.get_or_insert(e);
                }
                Some(Ok(())) => {}
            }
        }
        Err(first.unwrap_or_else(|| format!("{v} does not satisfy {}", self.0.text)))
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

/// A cursor over one `||` group.
struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_blanks(&mut self) -> bool {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
        self.i > start
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.s[self.i..].starts_with(token.as_bytes()) {
            self.i += token.len();
            true
        } else {
            false
        }
    }

    fn text(&self, from: usize) -> String {
        String::from_utf8_lossy(&self.s[from..self.i]).into_owned()
    }
}

fn parse_group(group: &str) -> Result<Vec<Comparator>, String> {
    let mut sc = Scanner {
        s: group.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    sc.skip_blanks();
    if sc.peek().is_none() {
        return Err("empty range (use * for any version)".into());
    }
    loop {
        let op = parse_op(&mut sc);
        sc.skip_blanks();
        let (orig, parts) = parse_version_text(&mut sc)?;
        // A hyphen range `A - B` (blanks required around the dash) means `>=A, <=B`.
        let save = sc.i;
        let had_blank = sc.skip_blanks();
        if op.is_none() && had_blank && sc.eat("-") && sc.skip_blanks() {
            let (orig_to, parts_to) = parse_version_text(&mut sc)?;
            out.push(comparator(Op::GreaterEqual, orig, &parts)?);
            out.push(comparator(Op::LessEqual, orig_to, &parts_to)?);
        } else {
            sc.i = save;
            out.push(comparator(op.unwrap_or(Op::TildeOrEqual), orig, &parts)?);
        }
        let blank = sc.skip_blanks();
        let comma = sc.eat(",");
        sc.skip_blanks();
        match sc.peek() {
            None if !comma => return Ok(out),
            None => return Err("a comma with nothing after it".into()),
            Some(_) if blank || comma => continue,
            Some(c) => {
                return Err(format!(
                    "unexpected {:?} after {:?}",
                    c as char,
                    out.last().map(|c| c.orig.as_str()).unwrap_or("")
                ));
            }
        }
    }
}

fn parse_op(sc: &mut Scanner<'_>) -> Option<Op> {
    const OPS: [(&str, Op); 11] = [
        ("!=", Op::NotEqual),
        (">=", Op::GreaterEqual),
        ("=>", Op::GreaterEqual),
        ("<=", Op::LessEqual),
        ("=<", Op::LessEqual),
        ("~>", Op::Tilde),
        ("=", Op::TildeOrEqual),
        (">", Op::Greater),
        ("<", Op::Less),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ];
    OPS.iter().find(|(t, _)| sc.eat(t)).map(|(_, op)| *op)
}

/// The pieces of a constraint's version: up to three parts (digits or a wildcard), then the
/// raw `-prerelease` and `+metadata` suffixes.
struct Parts {
    nums: Vec<String>,
    pre: String,
    meta: String,
}

fn parse_version_text(sc: &mut Scanner<'_>) -> Result<(String, Parts), String> {
    let start = sc.i;
    sc.eat("v");
    let mut nums = Vec::new();
    loop {
        let from = sc.i;
        while sc
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'x' | b'X' | b'*'))
        {
            sc.i += 1;
        }
        if sc.i == from {
            let found = sc.text(start);
            return Err(if found.is_empty() {
                "expected a version".to_string()
            } else {
                format!("{found:?} is not a version")
            });
        }
        nums.push(sc.text(from));
        if nums.len() == 3 || sc.peek() != Some(b'.') {
            break;
        }
        sc.i += 1;
    }
    let mut suffix = |lead: u8| -> Result<String, String> {
        if sc.peek() != Some(lead) {
            return Ok(String::new());
        }
        sc.i += 1;
        let from = sc.i;
        while sc
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        {
            sc.i += 1;
        }
        let text = sc.text(from);
        if text.is_empty() || text.split('.').any(str::is_empty) {
            return Err(format!(
                "bad prerelease or metadata in {:?}",
                sc.text(start)
            ));
        }
        Ok(text)
    };
    let pre = suffix(b'-')?;
    let meta = suffix(b'+')?;
    if sc
        .peek()
        .is_some_and(|b| !b.is_ascii_whitespace() && b != b',')
    {
        sc.i += 1;
        return Err(format!("{:?} is not a version", sc.text(start)));
    }
    Ok((sc.text(start), Parts { nums, pre, meta }))
}

fn is_wild(part: &str) -> bool {
    matches!(part, "x" | "X" | "*")
}

fn comparator(op: Op, orig: String, parts: &Parts) -> Result<Comparator, String> {
    let get = |i: usize| parts.nums.get(i).map(String::as_str);
    let pre = if parts.pre.is_empty() {
        String::new()
    } else {
        format!("-{}", parts.pre)
    };
    let (text, dirty, minor_dirty, patch_dirty) = match (get(0), get(1), get(2)) {
        (Some(m), _, _) if is_wild(m) => (format!("0.0.0{pre}"), true, false, false),
        (Some(m), None, _) => (format!("{m}.0.0{pre}"), true, true, false),
        (Some(m), Some(n), _) if is_wild(n) => (format!("{m}.0.0{pre}"), true, true, false),
        (Some(m), Some(n), None) => (format!("{m}.{n}.0{pre}"), true, false, true),
        (Some(m), Some(n), Some(p)) if is_wild(p) => (format!("{m}.{n}.0{pre}"), true, false, true),
        (Some(m), Some(n), Some(p)) => {
            let meta = if parts.meta.is_empty() {
                String::new()
            } else {
                format!("+{}", parts.meta)
            };
            (format!("{m}.{n}.{p}{pre}{meta}"), false, false, false)
        }
        (None, _, _) => return Err("expected a version".into()),
    };
    let version = Version::parse_lenient(&text).map_err(|e| format!("{orig:?}: {}", e.reason))?;
    Ok(Comparator {
        op,
        version,
        orig,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

impl Comparator {
    /// Masterminds' per-operator check, with its messages.
    fn check(&self, v: &Version) -> Result<(), String> {
        let c = &self.version;
        let orig = &self.orig;
        let fail = |what: &str| Err(format!("{v} {what} {orig}"));
        // A prerelease only satisfies comparators that mention a prerelease (Masterminds #21).
        let prerelease_refused = v.is_prerelease() && !c.is_prerelease();
        let refuse_pre = || {
            Err(format!(
                "{v} is a prerelease version and the constraint is only looking for release versions"
            ))
        };
        match self.op {
            Op::NotEqual => {
                if self.dirty {
                    if prerelease_refused {
                        return refuse_pre();
                    }
                    if c.major != v.major {
                        return Ok(());
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return Ok(());
                    } else if self.minor_dirty {
                        return fail("is equal to");
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return Ok(());
                    } else if self.patch_dirty {
                        if (v.is_prerelease() || c.is_prerelease())
                            && compare_prerelease(&v.pre, &c.pre).is_ne()
                        {
                            return Ok(());
                        }
                        return fail("is equal to");
                    }
                }
                if v == c { fail("is equal to") } else { Ok(()) }
            }
            Op::Greater => {
                if prerelease_refused {
                    return refuse_pre();
                }
                let greater = if !self.dirty {
                    v > c
                } else if v.major != c.major {
                    v.major > c.major
                } else if self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    v > c
                };
                if greater {
                    Ok(())
                } else {
                    fail("is less than or equal to")
                }
            }
            Op::Less => {
                if prerelease_refused {
                    return refuse_pre();
                }
                if v < c {
                    Ok(())
                } else {
                    fail("is greater than or equal to")
                }
            }
            Op::GreaterEqual => {
                if prerelease_refused {
                    return refuse_pre();
                }
                if v >= c { Ok(()) } else { fail("is less than") }
            }
            Op::LessEqual => {
                if prerelease_refused {
                    return refuse_pre();
                }
                let ok = if !self.dirty {
                    v <= c
                } else {
                    v.major < c.major
                        || (v.major == c.major && (self.minor_dirty || v.minor <= c.minor))
                };
                if ok { Ok(()) } else { fail("is greater than") }
            }
            Op::Tilde => {
                if prerelease_refused {
                    return refuse_pre();
                }
                self.tilde(v)
            }
            Op::TildeOrEqual => {
                if prerelease_refused {
                    return refuse_pre();
                }
                if self.dirty {
                    return self.tilde(v);
                }
                if v == c {
                    Ok(())
                } else {
                    fail("is not equal to")
                }
            }
            Op::Caret => {
                if prerelease_refused {
                    return refuse_pre();
                }
                self.caret(v)
            }
        }
    }

    fn tilde(&self, v: &Version) -> Result<(), String> {
        let c = &self.version;
        let orig = &self.orig;
        if v < c {
            return Err(format!("{v} is less than {orig}"));
        }
        // `~0.0.0` and `~*` accept everything from there on.
        if (c.major, c.minor, c.patch) == (0, 0, 0) && !self.minor_dirty && !self.patch_dirty {
            return Ok(());
        }
        if v.major != c.major {
            return Err(format!("{v} does not have same major version as {orig}"));
        }
        if v.minor != c.minor && !self.minor_dirty {
            return Err(format!(
                "{v} does not have same major and minor version as {orig}"
            ));
        }
        Ok(())
    }

    fn caret(&self, v: &Version) -> Result<(), String> {
        let c = &self.version;
        let orig = &self.orig;
        if v < c {
            return Err(format!("{v} is less than {orig}"));
        }
        if c.major > 0 || self.minor_dirty {
            if v.major == c.major {
                return Ok(());
            }
            return Err(format!("{v} does not have same major version as {orig}"));
        }
        if v.major > 0 {
            return Err(format!("{v} does not have same major version as {orig}"));
        }
        if c.minor > 0 || self.patch_dirty {
            if v.minor == c.minor {
                return Ok(());
            }
            return Err(format!(
                "{v} does not have same minor version as {orig}. Expected minor versions to match when constraint major version is 0"
            ));
        }
        if v.minor > 0 {
            return Err(format!("{v} does not have same minor version as {orig}"));
        }
        if v.patch == c.patch {
            return Ok(());
        }
        Err(format!(
            "{v} does not equal {orig}. Expect version and constraint to equal when major and minor versions are 0"
        ))
    }
}
