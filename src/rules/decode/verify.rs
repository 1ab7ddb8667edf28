//! Decoding deploy verification: an environment's `verify:` and the Settings' `clusters:`.

use std::path::PathBuf;

use jiff::SignedDuration;

use crate::rules::model::*;
use crate::yaml::Node;

use super::Decoder;
use super::text::is_name;

/// Argo CD's namespace when `verify.argocd.namespace` is not given.
pub const ARGOCD_NAMESPACE: &str = "argocd";
/// Flux's namespace when `verify.flux.namespace` is not given.
pub const FLUX_NAMESPACE: &str = "flux-system";

impl<'a> Decoder<'a> {
    pub(super) fn verify(&mut self, node: &'a Node) -> Option<Verify> {
        let f = self.fields(
            node,
            "verify",
            &["argocd", "flux", "cluster", "deployTimeout"],
        )?;
        let controller = match (f.get("argocd"), f.get("flux")) {
            (Some(n), None) => self.argocd(n),
            (None, Some(n)) => self.flux(n),
            _ => {
                self.error(
                    f.position,
                    "verify needs exactly one of argocd: { application } or flux: { kustomization }: the object that deploys this environment",
                );
                None
            }
        };
        let cluster = match f.get("cluster") {
            None => Some(None),
            Some(n) => self.string(n, "verify.cluster").map(Some),
        };
        let deploy_timeout = match f.get("deployTimeout") {
            None => Some(SignedDuration::from_mins(15)),
            Some(n) => self.positive_duration(n, "verify.deployTimeout"),
        };
        Some(Verify {
            controller: controller?,
            cluster: cluster?,
            deploy_timeout: deploy_timeout?,
        })
    }

    fn argocd(&mut self, node: &'a Node) -> Option<Controller> {
        let f = self.fields(node, "verify.argocd", &["application", "namespace"])?;
        let application = self
            .required(&f, "application", "verify.argocd")
            .and_then(|n| self.object_name(n, "verify.argocd.application"));
        let namespace = match f.get("namespace") {
            None => Some(ARGOCD_NAMESPACE.to_string()),
            Some(n) => self.object_name(n, "verify.argocd.namespace"),
        };
        Some(Controller::Argocd {
            application: application?,
            namespace: namespace?,
        })
    }

    fn flux(&mut self, node: &'a Node) -> Option<Controller> {
        let f = self.fields(
            node,
            "verify.flux",
            &["kustomization", "namespace", "helmRelease"],
        )?;
        let kustomization = self
            .required(&f, "kustomization", "verify.flux")
            .and_then(|n| self.object_name(n, "verify.flux.kustomization"));
        let namespace = match f.get("namespace") {
            None => Some(FLUX_NAMESPACE.to_string()),
            Some(n) => self.object_name(n, "verify.flux.namespace"),
        };
        let helm_release = match f.get("helmRelease") {
            None => Some(None),
            Some(n) => self.object_name(n, "verify.flux.helmRelease").map(Some),
        };
        Some(Controller::Flux {
            kustomization: kustomization?,
            namespace: namespace?,
            helm_release: helm_release?,
        })
    }

    /// A Kubernetes object or namespace name (RFC 1123: lowercase letters, digits, '-'
    /// and '.', at most 253), which goes into an API path.
    fn object_name(&mut self, node: &'a Node, what: &str) -> Option<String> {
        let name = self.string(node, what)?;
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !name.starts_with(['-', '.'])
            && !name.ends_with(['-', '.']);
        if !valid {
            self.error(
                node.position,
                format!("{what} {name:?} is not a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
            );
            return None;
        }
        Some(name)
    }

    pub(super) fn clusters(&mut self, node: &'a Node) -> Vec<Cluster> {
        let mut out: Vec<Cluster> = Vec::new();
        for item in self.list(node, "clusters").unwrap_or_default() {
            let Some(f) = self.fields(
                item,
                "a cluster",
                &[
                    "name",
                    "kubeconfig",
                    "context",
                    "allowExecPlugins",
                    "allowInsecureSkipTlsVerify",
                    "allowProxyUrl",
                ],
            ) else {
                continue;
            };
            let name = self.required(&f, "name", "a cluster").and_then(|n| {
                let name = self.string(n, "clusters[].name")?;
                if !is_name(&name) {
                    self.error(
                        n.position,
                        format!("cluster name {name:?} must be lowercase letters, digits and '-'"),
                    );
                    return None;
                }
                if out.iter().any(|c| c.name == name) {
                    self.error(
                        n.position,
                        format!("cluster {name:?} is named twice; give each its own name"),
                    );
                    return None;
                }
                Some(name)
            });
            let kubeconfig = self
                .required(&f, "kubeconfig", "a cluster")
                .and_then(|n| self.string(n, "clusters[].kubeconfig"))
                .map(PathBuf::from);
            let context = match f.get("context") {
                None => Some(None),
                Some(n) => self.string(n, "clusters[].context").map(Some),
            };
            let mut allowed = |key: &str| match f.get(key) {
                None => Some(false),
                Some(n) => self.bool(n, &format!("clusters[].{key}")),
            };
            let allows = (
                allowed("allowExecPlugins"),
                allowed("allowInsecureSkipTlsVerify"),
                allowed("allowProxyUrl"),
            );
            if let (
                Some(name),
                Some(kubeconfig),
                Some(context),
                (
                    Some(allow_exec_plugins),
                    Some(allow_insecure_skip_tls_verify),
                    Some(allow_proxy_url),
                ),
            ) = (name, kubeconfig, context, allows)
            {
                out.push(Cluster {
                    name,
                    kubeconfig,
                    context,
                    allow_exec_plugins,
                    allow_insecure_skip_tls_verify,
                    allow_proxy_url,
                });
            }
        }
        out
    }
}
