//! Studio identity providers: tokens signed by a JWKS key (RS256, ES256, EdDSA) are accepted,
//! every forgery and misfit is refused with 401 and its code, HS256 secrets rotate, and the
//! key set is read again on its maximum age and on an unknown `kid`, never in a storm.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use trove::config::Config;

use crate::helpers::{spawn_app, spawn_app_with, test_dir, TestApp, SECRET};

const ISSUER: &str = "https://id.studio.test/";
const AUDIENCE: &str = "trove";
const OLD_SECRET: &str = "the-secret-before-the-rotation";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwks")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A test signing key: its JWKS entry names it `kid`.
struct Signer {
    kid: &'static str,
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn new(kid: &'static str, alg: Algorithm) -> Signer {
        let der = fixture(&format!("{kid}.der"));
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_der(&der),
            Algorithm::ES256 => EncodingKey::from_ec_der(&der),
            _ => EncodingKey::from_ed_der(&der),
        };
        Signer { kid, alg, key }
    }

    /// The public JWK; `named` says whether it carries its `alg`.
    fn jwk(&self, named: bool) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("jwk");
        jwk.common.key_id = Some(self.kid.into());
        if !named {
            jwk.common.key_algorithm = None;
        } else {
            assert!(matches!(
                jwk.common.key_algorithm,
                Some(KeyAlgorithm::RS256 | KeyAlgorithm::ES256 | KeyAlgorithm::EdDSA)
            ));
        }
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }
}

fn jwks(keys: &[&Signer]) -> String {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|s| s.jwk(s.alg != Algorithm::EdDSA))
            .collect(),
    };
    serde_json::to_string(&set).expect("jwks")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A provider's claims for `player`, valid for an hour.
fn claims(player: &str, role: &str) -> Value {
    json!({"sub": player, "roles": [role], "iss": ISSUER, "aud": [AUDIENCE, "other"],
           "exp": now() + 3600, "iat": now()})
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().expect("object").remove(key);
    c
}

/// An app checking provider tokens from `jwks` (a file or URL), with the old HS256 secret
/// still accepted.
async fn provider_app(jwks: &str, min_refresh_ms: u64) -> TestApp {
    let base = spawn_app().await;
    let mut c = Config::for_shards(base.shard_urls.clone(), SECRET);
    c.auth.jwks = Some(jwks.parse().expect("jwks source"));
    c.auth.jwks_min_refresh_ms = min_refresh_ms;
    c.auth.jwt_issuers = vec![ISSUER.into()];
    c.auth.jwt_audiences = vec![AUDIENCE.into()];
    c.auth.jwt_role_claim = "roles".into();
    c.auth.jwt_admin_roles = vec!["trove-admin".into()];
    c.auth.jwt_previous_secrets = vec![OLD_SECRET.into()];
    spawn_app_with(c).await
}

/// Status and error code of `GET path` with `token`.
async fn ask(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let r = app.call(Method::GET, path, Some(token), None, &[]).await;
    (r.status, r.code().to_owned())
}

fn write(path: &PathBuf, text: &str) {
    std::fs::write(path, text).expect("write jwks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_accepted_and_forgeries_refused_with_their_codes() {
    let (rsa1, rsa2) = (
        Signer::new("rsa-1", Algorithm::RS256),
        Signer::new("rsa-2", Algorithm::RS256),
    );
    let (ec, ed) = (
        Signer::new("ec-1", Algorithm::ES256),
        Signer::new("ed-1", Algorithm::EdDSA),
    );
    let dir = test_dir("identity-file");
    let file = dir.join("jwks.json");
    write(&file, &jwks(&[&rsa1, &ec, &ed]));
    let app = provider_app(file.to_str().expect("utf8"), 200).await;
    app.starter().await;
    app.spawn_zone("idp-zone", 20, "starter").await;
    let zone = "/v1/zones/idp-zone";

    // Each algorithm, and the player id taken from `sub`: a claim is recorded as theirs.
    for (signer, player) in [
        (&rsa1, "rsa-player"),
        (&ec, "ec-player"),
        (&ed, "ed-player"),
    ] {
        let token = signer.sign(&claims(player, "gamer"));
        let asked = app.call(Method::GET, zone, Some(&token), None, &[]).await;
        assert_eq!(
            asked.status,
            StatusCode::OK,
            "{}: {:?}",
            signer.kid,
            asked.body
        );
        let claimed = app.claim("idp-zone", &token, None).await;
        assert_eq!(claimed.status, StatusCode::CREATED, "{:?}", claimed.body);
        assert_eq!(claimed.body["player"], player);
        // A player role cannot reach an admin route.
        assert_eq!(
            ask(&app, "/v1/audit", &token).await.0,
            StatusCode::FORBIDDEN
        );
    }
    // The role claim maps to Trove's admin.
    let admin = ec.sign(&claims("studio-ops", "trove-admin"));
    assert_eq!(ask(&app, "/v1/audit", &admin).await.0, StatusCode::OK);

    // Trove's own HS256 tokens: the current and the previous secret both work (no iss/aud:
    // those are the provider's), a third does not.
    let current = app.token("hs-current");
    let old = trove::auth::JwtKeys::new(OLD_SECRET.as_bytes()).expect("keys");
    let previous = old
        .issue("hs-previous", trove::auth::Role::Player, 600)
        .expect("token");
    let stranger = trove::auth::JwtKeys::new(b"a-secret-nobody-configured")
        .expect("keys")
        .issue("hs-stranger", trove::auth::Role::Player, 600)
        .expect("token");
    assert_eq!(ask(&app, zone, &current).await.0, StatusCode::OK);
    assert_eq!(ask(&app, zone, &previous).await.0, StatusCode::OK);
    assert_eq!(
        ask(&app, zone, &stranger).await,
        (StatusCode::UNAUTHORIZED, "invalid_token".into())
    );

    // Every misfit: 401 with its code.
    let good = claims("misfit", "gamer");
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    // Algorithm confusion: HS256 with the RSA public key (as PEM, and as the JWK's modulus)
    // as the HMAC secret, naming the RSA key.
    let pem = fixture("rsa-1.pub.pem");
    let modulus = match &rsa1.jwk(true).algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
        other => panic!("{other:?}"),
    };
    let confused = |secret: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(secret)).expect("sign")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", none, "invalid_token"),
        (
            "HS256 keyed with the RSA PEM",
            confused(&pem),
            "invalid_token",
        ),
        (
            "HS256 keyed with the modulus",
            confused(modulus.as_bytes()),
            "invalid_token",
        ),
        (
            "expired",
            rsa1.sign(&with(good.clone(), "exp", json!(now() - 3600))),
            "token_expired",
        ),
        (
            "no exp",
            rsa1.sign(&without(good.clone(), "exp")),
            "missing_claim",
        ),
        (
            "not yet valid",
            ec.sign(&with(good.clone(), "nbf", json!(now() + 3600))),
            "token_not_yet_valid",
        ),
        (
            "wrong iss",
            rsa1.sign(&with(good.clone(), "iss", json!("https://evil.test/"))),
            "wrong_issuer",
        ),
        (
            "no iss",
            ed.sign(&without(good.clone(), "iss")),
            "missing_claim",
        ),
        (
            "wrong aud",
            ec.sign(&with(good.clone(), "aud", json!("billing"))),
            "wrong_audience",
        ),
        (
            "no aud",
            rsa1.sign(&without(good.clone(), "aud")),
            "missing_claim",
        ),
        (
            "an IdP sub",
            ed.sign(&with(
                good.clone(),
                "sub",
                json!("auth0|5f7c8ec7c33c6c004bbafe82"),
            )),
            "invalid_player_claim",
        ),
        (
            "ES256 signature under the RSA kid",
            ec.sign_as("rsa-1", &good),
            "invalid_token",
        ),
        (
            "signed by a key not in the set",
            rsa2.sign_as("rsa-1", &good),
            "invalid_token",
        ),
        (
            "no kid",
            {
                let h = Header::new(Algorithm::RS256);
                jsonwebtoken::encode(&h, &good, &rsa1.key).expect("sign")
            },
            "invalid_token",
        ),
        ("a kid not in the set", rsa2.sign(&good), "unknown_key"),
    ];
    for (what, token, code) in &cases {
        assert_eq!(
            ask(&app, zone, token).await,
            (StatusCode::UNAUTHORIZED, code.to_string()),
            "{what}"
        );
    }

    // Rotation: the provider publishes rsa-2 and drops rsa-1. A token of rsa-2 (unknown until
    // now) makes Trove read the set again; rsa-1's token, accepted and cached a moment ago,
    // is refused from then on.
    let rsa1_token = rsa1.sign(&claims("rotated", "gamer"));
    assert_eq!(ask(&app, zone, &rsa1_token).await.0, StatusCode::OK);
    write(&file, &jwks(&[&rsa2, &ec, &ed]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rsa2_token = rsa2.sign(&claims("rotated", "gamer"));
    assert_eq!(ask(&app, zone, &rsa2_token).await.0, StatusCode::OK);
    assert_eq!(
        ask(&app, zone, &rsa1_token).await,
        (StatusCode::UNAUTHORIZED, "unknown_key".into()),
        "a rotated-out kid"
    );
}

/// A JWKS server on loopback that counts its requests and answers `Cache-Control: max-age`.
async fn jwks_server(body: String, max_age: u64) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    let hits = Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (body, hits) = (body.clone(), counted.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: public, max-age={max_age}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_in_a_storm_make_one_read_and_the_set_is_read_again_on_its_max_age() {
    let known = Signer::new("ec-1", Algorithm::ES256);
    let outsider = Signer::new("rsa-2", Algorithm::RS256);
    let (url, hits) = jwks_server(jwks(&[&known]), 2).await;
    let min_refresh = Duration::from_millis(3000);
    let app = provider_app(&url, min_refresh.as_millis() as u64).await;
    app.starter().await;
    app.spawn_zone("idp-storm", 5, "starter").await;
    let zone = "/v1/zones/idp-storm";
    assert_eq!(hits.load(Ordering::SeqCst), 1, "read once at start-up");
    tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;

    // 200 requests at once, each naming a different made-up kid.
    // (Signed first: RSA signing in a debug build takes tens of ms a token.)
    let tokens: Vec<String> = (0..200)
        .map(|i| outsider.sign_as(&format!("made-up-{i}"), &claims("stormer", "gamer")))
        .collect();
    let started = std::time::Instant::now();
    let mut storm = tokio::task::JoinSet::new();
    for token in tokens {
        let (client, url) = (app.client.clone(), format!("{}{zone}", app.base));
        storm.spawn(async move {
            let r = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("send");
            let status = r.status();
            let body: Value = r.json().await.expect("json");
            (
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        });
    }
    while let Some(answer) = storm.join_next().await {
        assert_eq!(
            answer.expect("join"),
            (StatusCode::UNAUTHORIZED, "unknown_key".to_owned())
        );
    }
    let after_storm = hits.load(Ordering::SeqCst);
    let took = started.elapsed();
    // One read, or one per min_refresh if this machine stretched the storm past it.
    let allowed = 1 + (took.as_millis() / min_refresh.as_millis()) as u64;
    let reads = after_storm - 1;
    println!("200 unknown kids in {took:?}: {reads} read(s) of the JWKS");
    assert!(
        (1..=allowed).contains(&reads),
        "{reads} reads, {allowed} allowed"
    );

    // A known key is served from the set in hand; once the set is older than its
    // Cache-Control max-age (2 s, here raised to the 3 s min_refresh) it is read again in the
    // background while requests go on being answered.
    let token = known.sign(&claims("steady", "gamer"));
    assert_eq!(ask(&app, zone, &token).await.0, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), after_storm);
    tokio::time::sleep(min_refresh + Duration::from_millis(300)).await;
    let fresh = known.sign(&claims("steady-2", "gamer"));
    assert_eq!(ask(&app, zone, &fresh).await.0, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hits.load(Ordering::SeqCst) == after_storm {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stale set was not read again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = app.metrics_text().await;
    let reads = crate::helpers::metric(&metrics, "trove_jwks_reads_total", &[]).expect("metric");
    assert_eq!(reads as u64, hits.load(Ordering::SeqCst));
}

/// `trove serve` in a child process (so `SSL_CERT_FILE` is its own) checking tokens with the
/// JWKS at `url`, on `shards`: the child and its base URL.
async fn trove_with_jwks(shards: &[String], url: &str, ca: Option<&Path>) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"));
    cmd.arg("serve")
        .env("TROVE_SHARDS", shards.join(","))
        .env("TROVE_JWT_SECRET", SECRET)
        .env("TROVE_JWKS", url)
        .env("TROVE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TROVE_DB_POOL_SIZE", "2")
        .env("RUST_LOG", "warn")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    let child = cmd.spawn().expect("trove");
    let base = format!("http://127.0.0.1:{port}");
    let up = std::time::Instant::now();
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "trove did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_over_https_is_read_with_the_trusted_roots_and_refused_without_them() {
    let dir = test_dir("identity-https");
    let signer = Signer::new("ec-1", Algorithm::ES256);
    std::fs::write(dir.join("jwks.json"), jwks(&[&signer])).expect("jwks");
    // A test CA, a certificate for 127.0.0.1 it signed, and a Python https server.
    std::fs::write(
        dir.join("leaf.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("cnf");
    let ec = "ec_paramgen_curve:P-256";
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            ec,
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=trove-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            ec,
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.cnf",
            "-out",
            "cert.pem",
        ],
    ] {
        let ok = std::process::Command::new("openssl")
            .args(&args)
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (apt-get install -y openssl)");
        assert!(ok.success(), "openssl {args:?}");
    }
    let server = r#"
import http.server, ssl, sys, functools
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
handler.log_message = lambda *a: None
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1] + "/cert.pem", sys.argv[1] + "/key.pem")
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"#;
    let mut https = tokio::process::Command::new("python3")
        .args(["-c", server])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut port = String::new();
    {
        use tokio::io::AsyncBufReadExt;
        let out = https.stdout.take().expect("stdout");
        tokio::io::BufReader::new(out)
            .read_line(&mut port)
            .await
            .expect("port");
    }
    let url = format!("https://127.0.0.1:{}/jwks.json", port.trim());
    let base = spawn_app().await;
    let token = signer.sign(&claims("tls-player", "gamer"));
    let ask = |base: String, token: String| async move {
        let r = reqwest::Client::new()
            .get(format!("{base}/v1/zones/nowhere"))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        (status, body)
    };

    // Trusting the test CA (SSL_CERT_FILE): the key set is read and the token accepted (the
    // zone does not exist: a 404 is an authenticated answer).
    let (_trusting, at) = trove_with_jwks(&base.shard_urls, &url, Some(&dir.join("ca.pem"))).await;
    let (status, body) = ask(at, token.clone()).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::NOT_FOUND, &json!("zone_not_found")),
        "{body}"
    );

    // With only the system's roots the test CA's server is not believed: no key, 401.
    let (_doubting, at) = trove_with_jwks(&base.shard_urls, &url, None).await;
    let (status, body) = ask(at, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unknown_key", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("failed"),
        "the refusal says the read failed: {body}"
    );
}
