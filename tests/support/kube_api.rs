//! A STAND-IN Kubernetes API, not a kube-apiserver (none can be installed on these
//! machines): HTTPS on 127.0.0.1 with a throwaway CA (made by the `openssl` command),
//! authentication by bearer token or client certificate, RBAC as a list of what each user
//! may do (get, list, watch), and `get`, `list` and `watch` of namespaced custom objects under
//! `/apis/{group}/{version}/namespaces/{namespace}/{plural}[/{name}]`, answered the way the
//! API server answers: `…List` documents with a `resourceVersion` (paged with `limit` and
//! `continue`, narrowed by `fieldSelector=metadata.name=…`); a watch
//! (`?watch=true&resourceVersion=N`) streams one JSON event per line (`ADDED`, `MODIFIED`,
//! `DELETED`) for every change after version N, until `timeoutSeconds`, and answers a version
//! older than its history with an `ERROR` event holding a 410 `Expired` status; `Status`
//! documents with 401, 403 and 404. The objects are whatever the test puts in, written to
//! the shape Argo CD and Flux document. It counts the requests it serves.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio_rustls::rustls;

use super::require;

/// Who may do what: a user's allowed (verb, plural, namespace).
type Grants = BTreeMap<String, HashSet<(String, String, String)>>;

/// A response body: a document, or a watch's stream.
type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// The bell open watches wait on.
type Changes = Arc<tokio::sync::watch::Sender<(u64, u64)>>;

/// A change, as a watch streams it.
struct Event {
    version: u64,
    plural: String,
    namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    resource_version: u64,
    /// Every change so far, oldest first, after `expired`.
    events: Vec<Event>,
    /// The oldest version whose changes are still known: a watch from before it is
    /// `Expired`.
    expired: u64,
    grants: Grants,
    /// Watches and lists asked for.
    watches: usize,
    lists: usize,
    /// Bearer token → user.
    tokens: BTreeMap<String, String>,
    /// Client certificate (DER) → user.
    certificates: BTreeMap<Vec<u8>, String>,
}

/// A running stand-in API.
pub struct KubeApi {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    /// Rung with every change: (the newest version, how many times history expired; open
    /// watches end when it grows).
    changes: Changes,
    /// Requests served, by path (query left out).
    requests: Arc<Mutex<Vec<String>>>,
    served: Arc<AtomicUsize>,
    dir: tempfile::TempDir,
}

/// `openssl` with `args`, in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate for `name` signed by the CA in `dir`, with `extensions`.
fn issue(dir: &Path, name: &str, subject: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn der_of(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem)
        .expect("a certificate")
        .as_ref()
        .to_vec()
}

impl KubeApi {
    /// Start the stand-in on a new port.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=stand-in-kube-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        issue(
            d,
            "server",
            "/CN=stand-in-kube-apiserver",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(der_of(&d.join("ca.pem"))))
            .expect("the CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .expect("a client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(der_of(&d.join("server.pem")))],
                PrivateKeyDer::from_pem_file(d.join("server.key")).expect("the key"),
            )
            .expect("a server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(AtomicUsize::new(0));
        let changes: Changes = Arc::new(tokio::sync::watch::Sender::new((0, 0)));
        let (s, r, n, c) = (
            state.clone(),
            requests.clone(),
            served.clone(),
            changes.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, s, r, n, c) =
                    (acceptor.clone(), s.clone(), r.clone(), n.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec());
                    let service = hyper::service::service_fn(move |req| {
                        let (s, r, n, c, peer) =
                            (s.clone(), r.clone(), n.clone(), c.clone(), peer.clone());
                        async move {
                            n.fetch_add(1, Ordering::SeqCst);
                            r.lock().unwrap().push(req.uri().path().to_string());
                            let (status, body) = match answer(&s, &req, peer.as_deref()) {
                                Answer::Document(status, body) => {
                                    (status, Full::new(Bytes::from(body.to_string())).boxed())
                                }
                                Answer::Watch(watch) => (200, stream(s, c, watch)),
                            };
                            let resp = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(body)
                                .expect("a response");
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            url,
            state,
            changes,
            requests,
            served,
            dir,
        }
    }

    /// Put `object` (its `metadata.name` and `metadata.namespace`) under `plural`, with a
    /// new resource version; open watches of `plural` there see it `ADDED` or `MODIFIED`.
    pub fn put(&self, plural: &str, mut object: Value) {
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        let version = state.resource_version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let key = key_of(plural, &object);
        let kind = if state.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.events.push(Event {
            version,
            plural: key.0.clone(),
            namespace: key.1.clone(),
            kind,
            object: object.clone(),
        });
        state.objects.insert(key, object);
        self.changes.send_modify(|(newest, _)| *newest = version);
    }

    /// Forget the history of changes, as the API server does when etcd compacts after
    /// writes elsewhere in the cluster moved the resource version on: open watches end,
    /// and a watch from any version handed out so far is answered 410 `Expired` (the
    /// client must list again).
    pub fn expire_history(&self) {
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        state.expired = state.resource_version;
        state.events.clear();
        self.changes
            .send_modify(|(_, expirations)| *expirations += 1);
    }

    /// Watches asked for so far (requests with `watch=true`, allowed or not).
    pub fn watches(&self) -> usize {
        self.state.lock().unwrap().watches
    }

    /// Lists asked for so far (of many objects, not watches; allowed or not).
    pub fn lists(&self) -> usize {
        self.state.lock().unwrap().lists
    }

    /// Let `user` get, list and watch `plural` in `namespace`.
    pub fn grant(&self, user: &str, plural: &str, namespace: &str) {
        self.grant_verbs(user, &["get", "list", "watch"], plural, namespace);
    }

    /// Let `user` do only `verbs` on `plural` in `namespace`.
    pub fn grant_verbs(&self, user: &str, verbs: &[&str], plural: &str, namespace: &str) {
        let mut state = self.state.lock().unwrap();
        let grants = state.grants.entry(user.to_string()).or_default();
        for verb in verbs {
            grants.insert((verb.to_string(), plural.to_string(), namespace.to_string()));
        }
    }

    /// Take back everything `user` was granted (the API now forbids it all).
    pub fn revoke(&self, user: &str) {
        self.state.lock().unwrap().grants.remove(user);
    }

    /// A kubeconfig for `user`, who authenticates with a bearer token (returned too).
    pub fn kubeconfig_with_token(&self, user: &str) -> (PathBuf, String) {
        let token = format!(
            "stand-in-token-{user}-{}",
            self.state.lock().unwrap().tokens.len()
        );
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.clone(), user.to_string());
        let credentials = format!("token: {token}");
        (self.kubeconfig(user, &self.url, &credentials), token)
    }

    /// A kubeconfig for `user`, who authenticates with a client certificate signed by the
    /// API's CA.
    pub fn kubeconfig_with_certificate(&self, user: &str) -> PathBuf {
        let d = self.dir.path();
        issue(
            d,
            user,
            &format!("/CN={user}"),
            "extendedKeyUsage=clientAuth\n",
        );
        let pem = d.join(format!("{user}.pem"));
        self.state
            .lock()
            .unwrap()
            .certificates
            .insert(der_of(&pem), user.to_string());
        let b64 = |file: &Path| {
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(file).unwrap())
        };
        let credentials = format!(
            "client-certificate-data: {}\n    client-key-data: {}",
            b64(&pem),
            b64(&d.join(format!("{user}.key")))
        );
        self.kubeconfig(user, &self.url, &credentials)
    }

    /// A kubeconfig for `user` whose server is `url` (an API that is not there, say).
    pub fn kubeconfig(&self, user: &str, url: &str, credentials: &str) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(self.dir.path().join("ca.pem")).unwrap());
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    {credentials}\ncontexts:\n- name: {user}@stand-in\n  context:\n    cluster: stand-in\n    user: {user}\ncurrent-context: {user}@stand-in\n"
        );
        let file = self
            .dir
            .path()
            .join(format!("{user}-{}.kubeconfig", rand_suffix()));
        std::fs::write(&file, text).unwrap();
        file
    }

    /// Requests served so far, by path.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests were served.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A `Status` document, as the API server sends with an error.
fn status(code: u16, reason: &str, message: String) -> (u16, Value) {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code }),
    )
}

/// What a request gets: a document, or a stream of changes.
enum Answer {
    Document(u16, Value),
    Watch(Watch),
}

/// A watch asked for: changes of `plural` in `namespace` after `from`, for `timeout`.
struct Watch {
    plural: String,
    namespace: String,
    /// `fieldSelector=metadata.name=NAME`: only that object.
    name: Option<String>,
    from: u64,
    timeout: std::time::Duration,
}

/// The `(plural, namespace, name)` of `object` under `plural`.
fn key_of(plural: &str, object: &Value) -> (String, String, String) {
    let field = |f: &str| {
        object["metadata"][f]
            .as_str()
            .unwrap_or_else(|| panic!("the object has a metadata.{f}"))
            .to_string()
    };
    (plural.to_string(), field("namespace"), field("name"))
}

/// The value of `name` in `query` (`a=1&b=2`).
fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn answer<B>(state: &Mutex<State>, req: &hyper::Request<B>, peer: Option<&[u8]>) -> Answer {
    decide(state, req, peer).unwrap_or_else(|(code, document)| Answer::Document(code, document))
}

fn decide<B>(
    state: &Mutex<State>,
    req: &hyper::Request<B>,
    peer: Option<&[u8]>,
) -> Result<Answer, (u16, Value)> {
    let mut state = state.lock().unwrap();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let user = match (bearer, peer) {
        (Some(token), _) => match state.tokens.get(token) {
            Some(user) => user.clone(),
            None => return Err(status(401, "Unauthorized", "Unauthorized".into())),
        },
        (None, Some(cert)) => match state.certificates.get(cert) {
            Some(user) => user.clone(),
            None => return Err(status(401, "Unauthorized", "Unauthorized".into())),
        },
        (None, None) => "system:anonymous".to_string(),
    };
    let parts: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let query = req.uri().query().unwrap_or("");
    let (group, version, namespace, plural, name) = match parts.as_slice() {
        ["apis", g, v, "namespaces", ns, plural] => (*g, *v, *ns, *plural, None),
        ["apis", g, v, "namespaces", ns, plural, name] => (*g, *v, *ns, *plural, Some(*name)),
        _ => {
            return Err(status(
                404,
                "NotFound",
                "the server could not find the requested resource".into(),
            ));
        }
    };
    let watching = query_value(query, "watch") == Some("true");
    // `fieldSelector=metadata.name=NAME` (the only field selector objects of every kind
    // have), URL-encoded.
    let selected = query_value(query, "fieldSelector")
        .map(|s| s.replace("%3D", "=").replace("%3d", "="))
        .and_then(|s| s.strip_prefix("metadata.name=").map(str::to_string));
    let verb = match (name, watching) {
        (Some(_), _) => "get",
        (None, true) => "watch",
        (None, false) => "list",
    };
    match verb {
        "watch" => state.watches += 1,
        "list" => state.lists += 1,
        _ => {}
    }
    let allowed = state.grants.get(&user).is_some_and(|g| {
        g.contains(&(verb.to_string(), plural.to_string(), namespace.to_string()))
    });
    if !allowed {
        return Err(status(
            403,
            "Forbidden",
            format!(
                "{plural}.{group} is forbidden: User \"{user}\" cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{namespace}\""
            ),
        ));
    }
    if let Some(name) = name {
        return match state.objects.get(&(
            plural.to_string(),
            namespace.to_string(),
            name.to_string(),
        )) {
            Some(object) => Ok(Answer::Document(200, object.clone())),
            None => Err(status(
                404,
                "NotFound",
                format!("{plural}.{group} \"{name}\" not found"),
            )),
        };
    }
    if watching {
        let from = query_value(query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(state.resource_version);
        let seconds = query_value(query, "timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1800);
        return Ok(Answer::Watch(Watch {
            plural: plural.to_string(),
            namespace: namespace.to_string(),
            name: selected,
            from,
            timeout: std::time::Duration::from_secs(seconds),
        }));
    }
    // Paged as the API server pages (`limit`, and `continue` with the token it gave).
    let from: usize = query_value(query, "continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = query_value(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let matching: Vec<&Value> = state
        .objects
        .iter()
        .filter(|((p, ns, n), _)| {
            p == plural && ns == namespace && selected.as_ref().is_none_or(|s| s == n)
        })
        .map(|(_, o)| o)
        .collect();
    let items: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(limit)
        .map(|o| (*o).clone())
        .collect();
    let more = from.saturating_add(limit) < matching.len();
    let kind = items
        .first()
        .and_then(|o| o["kind"].as_str())
        .map_or_else(|| "List".to_string(), |k| format!("{k}List"));
    let mut metadata = json!({ "resourceVersion": state.resource_version.to_string() });
    if more {
        metadata["continue"] = json!((from + limit).to_string());
    }
    Ok(Answer::Document(
        200,
        json!({ "apiVersion": format!("{group}/{version}"), "kind": kind, "metadata": metadata, "items": items }),
    ))
}

/// A watch's body: a line per change of its objects after its version, as they come, until
/// its timeout or the history expires. A version before the kept history gets one
/// `ERROR` event with a 410 `Expired` status, as the API server sends.
fn stream(state: Arc<Mutex<State>>, changes: Changes, watch: Watch) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut bell = changes.subscribe();
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + watch.timeout;
        let started = bell.borrow_and_update().1;
        let mut cursor = watch.from;
        loop {
            let lines = {
                let state = state.lock().unwrap();
                // The history expired while this watch was open: it ends.
                if bell.borrow().1 != started {
                    return;
                }
                if cursor < state.expired {
                    let (_, gone) = status(
                        410,
                        "Expired",
                        format!("too old resource version: {cursor} ({})", state.expired),
                    );
                    let line = json!({ "type": "ERROR", "object": gone });
                    let _ = tx.try_send(Bytes::from(format!("{line}\n")));
                    return;
                }
                let lines: String = state
                    .events
                    .iter()
                    .filter(|e| {
                        e.version > cursor
                            && e.plural == watch.plural
                            && e.namespace == watch.namespace
                            && watch
                                .name
                                .as_ref()
                                .is_none_or(|n| e.object["metadata"]["name"] == n.as_str())
                    })
                    .map(|e| format!("{}\n", json!({ "type": e.kind, "object": e.object })))
                    .collect();
                cursor = state.resource_version;
                lines
            };
            if !lines.is_empty() && tx.send(Bytes::from(lines)).await.is_err() {
                return;
            }
            tokio::select! {
                changed = bell.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(until) => return,
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(hyper::body::Frame::data(chunk)), rx))
    });
    http_body_util::StreamBody::new(body).boxed()
}
