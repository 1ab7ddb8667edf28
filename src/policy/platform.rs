//! Platforms compared as OCI's platform matchers (containerd's) compare them: architecture
//! aliases folded (`aarch64` is `arm64`, `x86_64` is `amd64`), and the default variant made
//! explicit (`arm64` is `arm64/v8`, `arm` is `arm/v7`), so that `linux/arm64` in the rules is
//! satisfied by the `linux/arm64/v8` child every buildx-built index carries. A variant named
//! on both sides must be the same. Pure.

/// `os/arch[/variant]` in its normal form.
pub fn normalize(platform: &str) -> String {
    let mut parts = platform.split('/');
    let os = parts.next().unwrap_or_default().to_ascii_lowercase();
    let arch = parts.next().unwrap_or_default().to_ascii_lowercase();
    let variant = parts.next().unwrap_or_default().to_ascii_lowercase();
    let (arch, variant) = match (arch.as_str(), variant.as_str()) {
        ("aarch64" | "arm64", "" | "8" | "v8") => ("arm64", "v8".to_string()),
        ("aarch64", v) => ("arm64", v.to_string()),
        ("armhf", _) => ("arm", "v7".to_string()),
        ("armel", _) => ("arm", "v6".to_string()),
        ("arm", "") => ("arm", "v7".to_string()),
        ("arm", v) if v.chars().all(|c| c.is_ascii_digit()) => ("arm", format!("v{v}")),
        ("x86_64" | "x86-64" | "amd64", "" | "v1") => ("amd64", String::new()),
        ("x86_64" | "x86-64", v) => ("amd64", v.to_string()),
        ("i386", v) => ("386", v.to_string()),
        (a, v) => (a, v.to_string()),
    };
    let arch = arch.to_string();
    if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    }
}

/// Whether an image offering `offered` satisfies the requirement `required`.
pub fn satisfies(offered: &str, required: &str) -> bool {
    normalize(offered) == normalize(required)
}

#[cfg(test)]
mod tests {
    use super::satisfies;

    #[test]
    fn variants_and_aliases_as_containerd_reads_them() {
        let rows = [
            ("linux/arm64/v8", "linux/arm64", true),
            ("linux/arm64", "linux/arm64/v8", true),
            ("linux/aarch64", "linux/arm64", true),
            ("linux/arm", "linux/arm/v7", true),
            ("linux/arm/7", "linux/arm/v7", true),
            ("linux/arm/v7", "linux/arm/v6", false),
            ("linux/arm/v6", "linux/arm", false),
            ("linux/x86_64", "linux/amd64", true),
            ("linux/amd64/v3", "linux/amd64", false),
            ("linux/amd64", "windows/amd64", false),
            ("linux/s390x", "linux/s390x", true),
        ];
        for (offered, required, expected) in rows {
            assert_eq!(
                satisfies(offered, required),
                expected,
                "{offered} for {required}"
            );
        }
    }
}
