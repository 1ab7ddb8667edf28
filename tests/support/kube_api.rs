//! A STAND-IN Kubernetes API, not a kube-apiserver (none can be installed on these
//! machines): HTTPS on 127.0.0.1 with a throwaway CA (made by the `openssl` command),
//! authentication by bearer token or client certificate, RBAC as a list of what each user
//! may read, and `get` and `list` of namespaced custom objects under
//! `/apis/{group}/{version}/namespaces/{namespace}/{plural}[/{name}]`, answered the way the
//! API server answers: `…List` documents with a `resourceVersion`, and `Status` documents
//! with 401, 403 and 404. The objects are whatever the test puts in, written to the shape
//! Argo CD and Flux document. It counts the requests it serves.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio_rustls::rustls;

use super::require;

/// Who may list what: a user's readable (plural, namespace) pairs.
type Grants = BTreeMap<String, HashSet<(String, String)>>;

#[derive(Default)]
struct State {
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    resource_version: u64,
    grants: Grants,
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
        let (s, r, n) = (state.clone(), requests.clone(), served.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, s, r, n) = (acceptor.clone(), s.clone(), r.clone(), n.clone());
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
                        let (s, r, n, peer) = (s.clone(), r.clone(), n.clone(), peer.clone());
                        async move {
                            n.fetch_add(1, Ordering::SeqCst);
                            r.lock().unwrap().push(req.uri().path().to_string());
                            let (status, body) = answer(&s, &req, peer.as_deref());
                            let resp = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
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
            requests,
            served,
            dir,
        }
    }

    /// Put `object` (its `metadata.name` and `metadata.namespace`) under `plural`, with a
    /// new resource version.
    pub fn put(&self, plural: &str, mut object: Value) {
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        let version = state.resource_version.to_string();
        object["metadata"]["resourceVersion"] = json!(version);
        let name = object["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_string();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .expect("a namespace")
            .to_string();
        state
            .objects
            .insert((plural.to_string(), namespace, name), object);
    }

    /// Let `user` get and list `plural` in `namespace`.
    pub fn grant(&self, user: &str, plural: &str, namespace: &str) {
        self.state
            .lock()
            .unwrap()
            .grants
            .entry(user.to_string())
            .or_default()
            .insert((plural.to_string(), namespace.to_string()));
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

fn answer<B>(state: &Mutex<State>, req: &hyper::Request<B>, peer: Option<&[u8]>) -> (u16, Value) {
    let state = state.lock().unwrap();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let user = match (bearer, peer) {
        (Some(token), _) => match state.tokens.get(token) {
            Some(user) => user.clone(),
            None => return status(401, "Unauthorized", "Unauthorized".into()),
        },
        (None, Some(cert)) => match state.certificates.get(cert) {
            Some(user) => user.clone(),
            None => return status(401, "Unauthorized", "Unauthorized".into()),
        },
        (None, None) => "system:anonymous".to_string(),
    };
    let parts: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let (group, version, namespace, plural, name) = match parts.as_slice() {
        ["apis", g, v, "namespaces", ns, plural] => (*g, *v, *ns, *plural, None),
        ["apis", g, v, "namespaces", ns, plural, name] => (*g, *v, *ns, *plural, Some(*name)),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource".into(),
            );
        }
    };
    let verb = if name.is_some() { "get" } else { "list" };
    let allowed = state
        .grants
        .get(&user)
        .is_some_and(|g| g.contains(&(plural.to_string(), namespace.to_string())));
    if !allowed {
        return status(
            403,
            "Forbidden",
            format!(
                "{plural}.{group} is forbidden: User \"{user}\" cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{namespace}\""
            ),
        );
    }
    let version_text = state.resource_version.to_string();
    match name {
        Some(name) => {
            match state
                .objects
                .get(&(plural.to_string(), namespace.to_string(), name.to_string()))
            {
                Some(object) => (200, object.clone()),
                None => status(
                    404,
                    "NotFound",
                    format!("{plural}.{group} \"{name}\" not found"),
                ),
            }
        }
        None => {
            let items: Vec<Value> = state
                .objects
                .iter()
                .filter(|((p, ns, _), _)| p == plural && ns == namespace)
                .map(|(_, o)| o.clone())
                .collect();
            let kind = items
                .first()
                .and_then(|o| o["kind"].as_str())
                .map_or_else(|| "List".to_string(), |k| format!("{k}List"));
            (
                200,
                json!({ "apiVersion": format!("{group}/{version}"), "kind": kind, "metadata": { "resourceVersion": version_text }, "items": items }),
            )
        }
    }
}
