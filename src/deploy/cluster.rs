//! Reading controllers' objects from clusters through the Kubernetes API (kube-rs),
//! read-only: one list per cluster, kind and namespace, however many environments read it.
//! A cluster is reached with a kubeconfig (a token or a client certificate) or, without
//! one, as the worker's service account.
//!
//! It fetches and hands the objects to [`super::argocd`] and [`super::flux`]; it must not
//! decide what a rollout means for a promotion (the engine's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kube::api::DynamicObject;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::{Rollout, argocd, flux};
use crate::rules::{Cluster, Controller};

/// How long one list may take before its cluster counts as unreachable.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a cluster's controllers could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct ClusterError {
    /// What kind of failure.
    pub kind: ClusterErrorKind,
    /// What happened, and what to check. Never holds a token, a key or a kubeconfig's
    /// contents.
    pub detail: String,
}

/// The kinds of [`ClusterError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClusterErrorKind {
    /// The kubeconfig (or the service account) cannot be used.
    #[error("config")]
    Config,
    /// The API cannot be reached, or did not answer in time.
    #[error("unreachable")]
    Unreachable,
    /// The credentials were refused (401).
    #[error("unauthorized")]
    Unauthorized,
    /// The credentials may not list these objects (403): RBAC.
    #[error("forbidden")]
    Forbidden,
    /// The object is not there (or its kind is not installed).
    #[error("not found")]
    NotFound,
    /// Any other answer.
    #[error("api")]
    Api,
}

/// Where a controller's object lives: the cluster (`None`: in-cluster) and the object.
pub type Place = (Option<String>, Controller);

/// One list: a cluster, a kind, a namespace.
pub(super) type List = (Option<String>, Kind, String);

/// One object: a cluster, a kind, a namespace and a name.
type Object = (Option<String>, Kind, String, String);

/// What was read of an object, or why it could not be.
type Read = Result<Value, ClusterError>;

/// Objects a watch's list asks for at once (a namespace of thousands is listed in pages).
const PAGE: u32 = 250;

/// Objects read at once, across clusters.
const READS_AT_ONCE: usize = 8;

/// The largest object read: an Application with a long status is some hundreds of KiB.
const MAX_OBJECT_BYTES: usize = 4 << 20;

/// The largest page of a list read ([`PAGE`] objects of some tens of KiB).
const MAX_PAGE_BYTES: usize = 24 << 20;

/// One page of a list, as the API sends it.
#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    metadata: PageMetadata,
    #[serde(default)]
    items: Vec<DynamicObject>,
}

/// A list page's metadata: its version, and the token of the next page.
#[derive(serde::Deserialize, Default)]
struct PageMetadata {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    #[serde(rename = "continue")]
    next: Option<String>,
}

/// `text` for a query string: every byte but letters, digits and `-._~` percent-encoded.
fn escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bytes of `body`, refused once past `limit` (the rest is never read).
async fn bounded_body(mut body: kube::client::Body, limit: usize) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt as _;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the answer broke off: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(format!(
                    "the answer is larger than the {} MiB an object may be",
                    limit >> 20
                ));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// A cluster's client, and when its credentials expire (an exec plugin's).
type Connected = (kube::Client, Option<jiff::Timestamp>);

/// The clusters of the rules, connected on first use.
pub struct Clusters {
    clusters: Vec<Cluster>,
    /// Each cluster's client, and when its credentials expire (an exec plugin's).
    clients: tokio::sync::Mutex<HashMap<Option<String>, Connected>>,
}

impl Clusters {
    /// The clusters of `Settings.clusters` (and the one the worker runs in).
    pub fn new(clusters: Vec<Cluster>) -> Self {
        Self {
            clusters,
            clients: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// What each controller object of `wanted` reports, each object read once by name
    /// (never its whole namespace: a namespace of many large objects costs nothing), a few
    /// at a time.
    pub async fn rollouts(
        &self,
        wanted: &[Place],
    ) -> HashMap<Place, Result<Rollout, ClusterError>> {
        use futures_util::StreamExt as _;
        let objects: BTreeSet<Object> = wanted
            .iter()
            .flat_map(|(cluster, controller)| {
                objects_of(controller)
                    .into_iter()
                    .map(|(kind, namespace, name)| {
                        (
                            cluster.clone(),
                            kind,
                            namespace.to_string(),
                            name.to_string(),
                        )
                    })
            })
            .collect();
        let read: BTreeMap<Object, Read> = futures_util::stream::iter(objects)
            .map(|object| async move {
                let read = self.get(&object).await;
                (object, read)
            })
            .buffer_unordered(READS_AT_ONCE)
            .collect()
            .await;
        wanted
            .iter()
            .map(|place| (place.clone(), rollout_of(place, &read)))
            .collect()
    }

    /// The object `(cluster, kind, namespace, name)`, read by name within [`LIST_TIMEOUT`],
    /// its answer refused past [`MAX_OBJECT_BYTES`] (the rest never read).
    async fn get(&self, (cluster, kind, namespace, name): &Object) -> Read {
        let client = self.client(cluster).await?;
        let at = format!(
            "{}, {} {name:?} in {namespace}",
            shown(cluster),
            kind.singular()
        );
        let path = api_path(*kind, namespace, &format!("/{name}"));
        let (status, body) = read_whole(&client, &path, MAX_OBJECT_BYTES, &at).await?;
        if status != 200 {
            return Err(refused(cluster, *kind, namespace, name, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ClusterError {
            kind: ClusterErrorKind::Api,
            detail: format!("{at}: the answer is not an object: {e}"),
        })
    }

    /// Open a watch of `kind` in `namespace` of `cluster` from `version` (for at most
    /// `seconds`; of one object where `selector` says), read a line at a time, none longer
    /// than [`MAX_OBJECT_BYTES`].
    pub(super) async fn watch(
        &self,
        (cluster, kind, namespace): (&Option<String>, Kind, &str),
        version: &str,
        selector: Option<&str>,
        seconds: u32,
    ) -> Result<Events, ClusterError> {
        let client = self.client(cluster).await?;
        let mut query = format!(
            "?watch=true&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={seconds}",
            escaped(version)
        );
        if let Some(selector) = selector {
            query.push_str(&format!("&fieldSelector={}", escaped(selector)));
        }
        let at = format!("{}, {} in {namespace}", shown(cluster), kind.plural());
        let response = tokio::time::timeout(
            LIST_TIMEOUT,
            send(&client, &api_path(kind, namespace, &query), &at),
        )
        .await
        .map_err(|_| ClusterError {
            kind: ClusterErrorKind::Unreachable,
            detail: format!("{at}: no answer within {}s", LIST_TIMEOUT.as_secs()),
        })??;
        let status = response.status().as_u16();
        if status != 200 {
            let body = bounded_body(response.into_body(), MAX_OBJECT_BYTES)
                .await
                .unwrap_or_default();
            return Err(refused(cluster, kind, namespace, "", status, &body));
        }
        Ok(Events {
            body: response.into_body(),
            buffer: Vec::new(),
            at,
        })
    }

    /// The objects of `kind` in `namespace` of `cluster` whose fields match `selector`
    /// (`metadata.name=…` where one object is watched), listed a page at a time (each page
    /// within [`LIST_TIMEOUT`], refused past [`MAX_PAGE_BYTES`] unread — an API that ignores
    /// `limit` cannot make one page the whole namespace) and handed to `page`; the list's
    /// resource version.
    pub(super) async fn list_pages(
        &self,
        (cluster, kind, namespace): (&Option<String>, Kind, &str),
        selector: Option<&str>,
        mut page: impl FnMut(Vec<DynamicObject>),
    ) -> Result<String, ClusterError> {
        let client = self.client(cluster).await?;
        let at = format!("{}, {} in {namespace}", shown(cluster), kind.plural());
        let mut token: Option<String> = None;
        loop {
            let mut query = format!("?limit={PAGE}");
            if let Some(selector) = selector {
                query.push_str(&format!("&fieldSelector={}", escaped(selector)));
            }
            if let Some(token) = &token {
                query.push_str(&format!("&continue={}", escaped(token)));
            }
            let path = api_path(kind, namespace, &query);
            let (status, body) = read_whole(&client, &path, MAX_PAGE_BYTES, &at).await?;
            if status != 200 {
                return Err(refused(cluster, kind, namespace, "", status, &body));
            }
            let listed: Page = serde_json::from_slice(&body).map_err(|e| ClusterError {
                kind: ClusterErrorKind::Api,
                detail: format!("{at}: the answer is not a list: {e}"),
            })?;
            let version = listed.metadata.resource_version.unwrap_or_default();
            page(listed.items);
            match listed.metadata.next.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(version),
            }
        }
    }

    /// A client for `cluster`, connected on first use (and again once credentials an exec
    /// plugin gave expire). Connecting (which may run a plugin) holds no lock: a slow
    /// cluster delays only its own reads.
    async fn client(&self, cluster: &Option<String>) -> Result<kube::Client, ClusterError> {
        let now = jiff::Timestamp::now();
        {
            let clients = self.clients.lock().await;
            // (Connected anew a minute before an exec plugin's credentials expire.)
            let fresh = |t: &jiff::Timestamp| {
                now.checked_add(jiff::SignedDuration::from_mins(1))
                    .is_ok_and(|soon| *t > soon)
            };
            if let Some((client, expires)) = clients.get(cluster)
                && expires.as_ref().is_none_or(fresh)
            {
                return Ok(client.clone());
            }
        }
        // Kept once connected; a failure is tried again next pass (a kubeconfig secret
        // mounted late, a service account token not there yet).
        let (client, expires) = self.connect(cluster).await?;
        self.clients
            .lock()
            .await
            .insert(cluster.clone(), (client.clone(), expires));
        Ok(client)
    }

    /// A client for `cluster`, and when the credentials it holds expire (an exec plugin's).
    async fn connect(
        &self,
        cluster: &Option<String>,
    ) -> Result<(kube::Client, Option<jiff::Timestamp>), ClusterError> {
        let config_error = |detail: String| ClusterError {
            kind: ClusterErrorKind::Config,
            detail,
        };
        let mut expires = None;
        let config = match cluster {
            None => kube::Config::incluster().map_err(|e| {
                config_error(format!("not running in a cluster ({e}); name one with verify.cluster and Settings.clusters"))
            })?,
            Some(name) => {
                let Some(c) = self.clusters.iter().find(|c| &c.name == name) else {
                    return Err(config_error(format!("cluster {name:?} is not in Settings.clusters")));
                };
                let (mut file, text) = read_kubeconfig(&c.kubeconfig).map_err(|why| {
                    config_error(format!(
                        "cluster {name:?}: cannot read the kubeconfig {}: {why}",
                        c.kubeconfig.display()
                    ))
                })?;
                if let Some(refusal) = super::kubeconfig::vet(&file, &text, c).into_iter().next() {
                    let line = refusal.line.map(|l| format!(":{l}")).unwrap_or_default();
                    return Err(config_error(format!(
                        "cluster {name:?}: {}{line}: {}",
                        c.kubeconfig.display(),
                        refusal.message
                    )));
                }
                // An allowed exec plugin runs here, its credentials handed to kube in its
                // place (kube would run it with the worker's whole environment).
                let user = super::kubeconfig::context_of(&file, c).map(|(user, _)| user);
                if let Some(entry) = file
                    .auth_infos
                    .iter_mut()
                    .find(|a| Some(&a.name) == user.as_ref())
                    && let Some(auth) = entry.auth_info.as_mut()
                    && auth.exec.is_some()
                {
                    let credential = super::kubeconfig::run_exec(auth).await.map_err(|why| {
                        config_error(format!(
                            "cluster {name:?}: the exec plugin of {} failed: {why}",
                            c.kubeconfig.display()
                        ))
                    })?;
                    *auth = credential.auth_info;
                    expires = credential.expires;
                }
                let options = KubeConfigOptions {
                    context: c.context.clone(),
                    ..KubeConfigOptions::default()
                };
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| {
                        config_error(format!(
                            "cluster {name:?}: the kubeconfig {} cannot be used: {}",
                            c.kubeconfig.display(),
                            kubeconfig_problem(&e)
                        ))
                    })?
            }
        };
        let client = kube::Client::try_from(config)
            .map_err(|e| config_error(format!("{}: {e}", shown(cluster))))?;
        Ok((client, expires))
    }
}

/// The kubeconfig at `path`, parsed, and its text (for lines); why not, without its
/// contents.
pub fn read_kubeconfig(path: &std::path::Path) -> Result<(Kubeconfig, String), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}", e.kind()))?;
    if meta.len() > 1 << 20 {
        return Err("it is larger than 1 MiB".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}", e.kind()))?;
    let file = Kubeconfig::from_yaml(&text).map_err(|e| kubeconfig_problem(&e))?;
    // Its credentials, remembered: no text the process shows can hold them.
    for auth in file.auth_infos.iter().filter_map(|a| a.auth_info.as_ref()) {
        use secrecy::ExposeSecret as _;
        for secret in [&auth.token, &auth.password, &auth.client_key_data]
            .into_iter()
            .flatten()
        {
            crate::secret::remember(secret.expose_secret());
        }
    }
    Ok((file, text))
}

/// A kubeconfig's problem, by its kind only: kube's messages may quote the file.
fn kubeconfig_problem(e: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as K;
    match e {
        K::CurrentContextNotSet => "it sets no current-context; name one in context:".into(),
        K::LoadContext(name) => format!("it has no context {name:?}"),
        K::LoadClusterOfContext(name) => format!("it has no cluster {name:?}"),
        K::ReadConfig(..) => "the file cannot be read".into(),
        K::Parse(_) | K::KindMismatch | K::ApiVersionMismatch => "it is not a kubeconfig".into(),
        K::MissingClusterUrl | K::ParseClusterUrl(_) => "its cluster has no server URL".into(),
        _ => "its certificates or credentials cannot be loaded".into(),
    }
}

/// How a cluster is named in messages.
fn shown(cluster: &Option<String>) -> String {
    match cluster {
        Some(name) => format!("cluster {name:?}"),
        None => "the cluster the worker runs in".into(),
    }
}

/// What `e`, from listing or watching `kind` in `namespace`, means.
pub(super) fn classify(
    cluster: &Option<String>,
    kind: Kind,
    namespace: &str,
    e: &kube::Error,
) -> ClusterError {
    let at = format!("{}, {} in {namespace}", shown(cluster), kind.plural());
    let (kind_of, detail) = match e {
        kube::Error::Api(status) => match status.code {
            401 => (
                ClusterErrorKind::Unauthorized,
                format!(
                    "{at}: the credentials were refused; renew the kubeconfig's token or certificate"
                ),
            ),
            403 => (
                ClusterErrorKind::Forbidden,
                format!(
                    "{at}: forbidden ({}); grant get, list and watch on {} (the deploy/verify component has the ClusterRole)",
                    status.message,
                    kind.plural()
                ),
            ),
            404 => (
                ClusterErrorKind::NotFound,
                format!("{at}: not found; is {} installed there?", kind.controller()),
            ),
            code => (
                ClusterErrorKind::Api,
                format!("{at}: the API answered {code}: {}", status.message),
            ),
        },
        other => (
            ClusterErrorKind::Unreachable,
            format!("{at}: cannot reach the API: {other}"),
        ),
    };
    ClusterError {
        kind: kind_of,
        detail,
    }
}

/// The API path of `kind` in `namespace`, then `rest` (`/NAME`, or a `?query`).
fn api_path(kind: Kind, namespace: &str, rest: &str) -> String {
    let resource = kind.resource();
    format!(
        "/apis/{}/namespaces/{namespace}/{}{rest}",
        resource.api_version, resource.plural
    )
}

/// `GET path` through `client` (`at`: what is read, for messages).
async fn send(
    client: &kube::Client,
    path: &str,
    at: &str,
) -> Result<axum::http::Response<kube::client::Body>, ClusterError> {
    let unreachable = |detail: String| ClusterError {
        kind: ClusterErrorKind::Unreachable,
        detail,
    };
    let request = axum::http::Request::get(path)
        .header(axum::http::header::ACCEPT, "application/json")
        .body(kube::client::Body::empty())
        .map_err(|e| unreachable(format!("{at}: {e}")))?;
    client
        .send(request)
        .await
        .map_err(|e| unreachable(format!("{at}: cannot reach the API: {e}")))
}

/// `GET path`, its status and its body (refused past `limit`, the rest unread), all within
/// [`LIST_TIMEOUT`].
async fn read_whole(
    client: &kube::Client,
    path: &str,
    limit: usize,
    at: &str,
) -> Result<(u16, Vec<u8>), ClusterError> {
    let read = async {
        let response = send(client, path, at).await?;
        let status = response.status().as_u16();
        let body = bounded_body(response.into_body(), limit)
            .await
            .map_err(|e| ClusterError {
                kind: ClusterErrorKind::Api,
                detail: format!("{at}: {e}"),
            })?;
        Ok((status, body))
    };
    tokio::time::timeout(LIST_TIMEOUT, read)
        .await
        .map_err(|_| ClusterError {
            kind: ClusterErrorKind::Unreachable,
            detail: format!("{at} did not answer within {}s", LIST_TIMEOUT.as_secs()),
        })?
}

/// Why the API refused to read `kind` `name` (`""`: the list) in `namespace`: by its
/// `status`, with its own words where its `body` is a Status.
fn refused(
    cluster: &Option<String>,
    kind: Kind,
    namespace: &str,
    name: &str,
    status: u16,
    body: &[u8],
) -> ClusterError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            Some(
                v.get("message")?
                    .as_str()?
                    .chars()
                    .take(300)
                    .collect::<String>(),
            )
        })
        .unwrap_or_default();
    let listed = format!("{}, {} in {namespace}", shown(cluster), kind.plural());
    let (kind_of, detail) = match status {
        401 => (
            ClusterErrorKind::Unauthorized,
            format!(
                "{listed}: the credentials were refused; renew the kubeconfig's token or certificate"
            ),
        ),
        403 => (
            ClusterErrorKind::Forbidden,
            format!(
                "{listed}: forbidden ({message}); grant get, list and watch on {} (the deploy/verify component has the ClusterRole)",
                kind.plural()
            ),
        ),
        404 => (
            ClusterErrorKind::NotFound,
            format!(
                "{}: no {} {name:?} in {namespace} (is {} installed there?)",
                shown(cluster),
                kind.singular(),
                kind.controller()
            ),
        ),
        code => (
            ClusterErrorKind::Api,
            format!("{listed}: the API answered {code}: {message}"),
        ),
    };
    ClusterError {
        kind: kind_of,
        detail,
    }
}

/// An open watch: its events, a line each.
pub(super) struct Events {
    body: kube::client::Body,
    buffer: Vec<u8>,
    /// What is watched, for messages.
    at: String,
}

impl Events {
    /// The next event; `None` when the watch ended (its timeout). A line longer than
    /// [`MAX_OBJECT_BYTES`] ends it as a failure, the rest unread.
    pub(super) async fn next(
        &mut self,
    ) -> Result<Option<kube::api::WatchEvent<DynamicObject>>, ClusterError> {
        use http_body_util::BodyExt as _;
        let failed = |kind, detail: String| ClusterError { kind, detail };
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return serde_json::from_slice(line).map(Some).map_err(|e| {
                    failed(
                        ClusterErrorKind::Api,
                        format!("{}: a watch event is not one: {e}", self.at),
                    )
                });
            }
            if self.buffer.len() > MAX_OBJECT_BYTES {
                return Err(failed(
                    ClusterErrorKind::Api,
                    format!(
                        "{}: a watch event is larger than the {} MiB an object may be",
                        self.at,
                        MAX_OBJECT_BYTES >> 20
                    ),
                ));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(failed(
                        ClusterErrorKind::Unreachable,
                        format!("{}: the watch broke off: {e}", self.at),
                    ));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// The rollout of one place, from the objects read.
fn rollout_of(
    (cluster, controller): &Place,
    read: &BTreeMap<Object, Read>,
) -> Result<Rollout, ClusterError> {
    let get = |kind: Kind, namespace: &str, name: &str| -> Result<Value, ClusterError> {
        let key = (
            cluster.clone(),
            kind,
            namespace.to_string(),
            name.to_string(),
        );
        read.get(&key)
            .ok_or_else(|| ClusterError {
                kind: ClusterErrorKind::Api,
                detail: "not read".into(),
            })?
            .clone()
    };
    match controller {
        Controller::Argocd {
            application,
            namespace,
        } => Ok(argocd::rollout(&get(
            Kind::Application,
            namespace,
            application,
        )?)),
        Controller::Flux {
            kustomization,
            namespace,
            helm_release,
        } => {
            let k = get(Kind::Kustomization, namespace, kustomization)?;
            let release = match helm_release {
                Some(name) => Some(get(Kind::HelmRelease, namespace, name)?),
                None => None,
            };
            Ok(flux::rollout(&k, release.as_ref()))
        }
    }
}

/// The kinds of object read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Kind {
    Application,
    Kustomization,
    HelmRelease,
}

impl Kind {
    pub(super) fn resource(self) -> ApiResource {
        let (group, version, kind) = match self {
            Self::Application => ("argoproj.io", "v1alpha1", "Application"),
            Self::Kustomization => ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
            Self::HelmRelease => ("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
        };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: self.plural().into(),
        }
    }

    pub(super) fn plural(self) -> &'static str {
        match self {
            Self::Application => "applications",
            Self::Kustomization => "kustomizations",
            Self::HelmRelease => "helmreleases",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Self::Application => "Application",
            Self::Kustomization => "Kustomization",
            Self::HelmRelease => "HelmRelease",
        }
    }

    fn controller(self) -> &'static str {
        match self {
            Self::Application => "Argo CD",
            Self::Kustomization => "Flux's kustomize-controller",
            Self::HelmRelease => "Flux's helm-controller",
        }
    }
}

/// The objects a controller's rollout is read from: (kind, namespace, name).
pub(super) fn objects_of(controller: &Controller) -> Vec<(Kind, &str, &str)> {
    match controller {
        Controller::Argocd {
            application,
            namespace,
        } => vec![(Kind::Application, namespace, application)],
        Controller::Flux {
            kustomization,
            namespace,
            helm_release,
        } => {
            let mut objects = vec![(
                Kind::Kustomization,
                namespace.as_str(),
                kustomization.as_str(),
            )];
            if let Some(release) = helm_release {
                objects.push((Kind::HelmRelease, namespace, release));
            }
            objects
        }
    }
}
