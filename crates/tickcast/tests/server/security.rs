//! Limits and authentication end to end: per-IP connection limit (429), inbound message rate limit
//! (`rate_limited`, then 1008), API keys and JWTs (HS256, RS256) from every place a client can put
//! them, topic entitlements (`forbidden`), expiry at the upgrade (401) and while connected (1008),
//! and the Origin allowlist (403). Real server, real sockets, independent client.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tickcast::config::ApiKeySection;
use tickcast_gateway::auth::Secret;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

const API_KEY: &str = "test-api-key-0123456789";
const HS_SECRET: &str = "test-hs256-secret-0123456789abcdef";

/// Opens a WebSocket to `path` (with query) sending `headers`; the 101 response comes back too.
async fn open(
    server: &RunningServer,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Client, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut req = format!("ws://{}{path}", server.addr())
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")?;
    Ok((Client { ws }, resp))
}

/// The status and JSON body of a refused upgrade.
async fn refused(
    server: &RunningServer,
    path: &str,
    headers: &[(&'static str, &str)],
) -> (u16, Value) {
    match open(server, path, headers).await {
        Ok(_) => panic!("upgrade to {path} with {headers:?} was accepted"),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (resp.status().as_u16(), json)
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn hs256(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("sign")
}

/// Auth on, with one API key for `ticker.*`, an HS256 secret and the RS256 test public key.
fn with_auth(c: &mut tickcast::Config) {
    feed(c, &["AAPL", "MSFT"], 50.0);
    c.auth.enabled = true;
    c.auth.api_keys = vec![ApiKeySection {
        key: Secret::new(API_KEY),
        topics: vec!["ticker.*".into()],
    }];
    c.auth.hs256_secret = Some(Secret::new(HS_SECRET));
    c.auth.rs256_public_key_file = Some(fixture_path("jwt_rs256_public.pem"));
    c.auth.leeway_secs = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_limit_refuses_with_429_and_frees_on_close() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.limits.max_connections_per_ip = 2;
    })
    .await;
    let a = Client::connect(&server).await;
    let _b = Client::connect(&server).await;
    let (status, _) = refused(&server, "/ws", &[]).await;
    assert_eq!(status, 429);
    assert_eq!(
        metric(
            &server,
            "tickcast_limit_rejections_total{limit=\"max_connections_per_ip\"}"
        )
        .await,
        Some(1.0)
    );

    // Closing one frees its place (the slot is released when the session ends).
    drop(a);
    let state = server.running().state();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    poll_until(WAIT, || state.sessions_from(local) < 2).await;
    assert_eq!(state.sessions_from(local), 1);
    let mut c = Client::connect(&server).await;
    c.subscribe(&["ticker.AAPL"], 1).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_flood_gets_rate_limited_then_closed_1008() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.limits.max_messages_per_second = 1;
        c.limits.message_burst = 3;
        c.limits.max_rate_violations = 2;
    })
    .await;
    let mut c = Client::connect(&server).await;
    // One request at a time, each answered before the next, so no unread bytes are left when the
    // server closes (which would turn the close into a reset).
    let (mut pongs, mut limited) = (0, 0);
    let close = 'flood: {
        for i in 0..1000u64 {
            c.send(json!({"op":"ping","id":i})).await;
            match c.next_event().await {
                Event::Json(v) if v["type"] == "pong" => pongs += 1,
                Event::Json(v) if v["code"] == "rate_limited" => {
                    assert_eq!(v["id"], Value::Null, "the request was not read: {v}");
                    assert!(v["message"]
                        .as_str()
                        .unwrap()
                        .contains("1 messages per second"));
                    limited += 1;
                }
                Event::Json(v) => panic!("unexpected {v}"),
                Event::Closed(frame) => break 'flood frame,
            }
        }
        panic!("never closed");
    };
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "message rate limit exceeded");
    assert!(pongs >= 3, "the burst is served");
    assert!(limited >= 2, "violations are answered before the close");
    let m = metrics(&server).await;
    assert!(m
        .sample("tickcast_limit_rejections_total{limit=\"message_rate\"}")
        .is_some());
    assert_eq!(
        m.sample("tickcast_connections_closed_total{reason=\"rate_limited\"}"),
        Some(1.0)
    );
    // Others are unaffected.
    let mut other = Client::connect(&server).await;
    other.subscribe(&["ticker.AAPL"], 1).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_from_header_query_or_subprotocol() {
    let server = start_server(with_auth).await;
    let bearer = format!("Bearer {API_KEY}");
    let (mut c, _) = open(&server, "/ws", &[("authorization", &bearer)])
        .await
        .expect("header key accepted");
    c.subscribe(&["ticker.AAPL"], 1).await;

    let (mut c, _) = open(&server, &format!("/ws?token={API_KEY}"), &[])
        .await
        .expect("query key accepted");
    c.subscribe(&["ticker.AAPL"], 1).await;

    let protocols = format!("tickcast.v1, bearer.{API_KEY}");
    let (mut c, resp) = open(&server, "/ws", &[("sec-websocket-protocol", &protocols)])
        .await
        .expect("subprotocol key accepted");
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "tickcast.v1",
        "ours is selected, the token never echoed"
    );
    c.subscribe(&["ticker.AAPL"], 1).await;

    let (status, body) = refused(&server, "/ws", &[("authorization", "Bearer wrong-key")]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_api_key");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, body) = refused(&server, "/ws", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_credentials"))
    );
    let (status, body) = refused(&server, "/ws", &[("authorization", "Basic eDp5")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("malformed_credentials"))
    );
    let m = metrics(&server).await;
    assert_eq!(
        m.get(
            "tickcast_auth_failures_total",
            &[("reason", "invalid_api_key")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "tickcast_auth_failures_total",
            &[("reason", "missing_credentials")]
        ),
        Some(1.0)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_entitlements_forbid_only_the_topics_outside_them() {
    let server = start_server(with_auth).await;
    // Once AAPL has data, the ack lists nothing as pending.
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    let token = hs256(json!({"sub":"alice","exp": unix_now() + 600,"topics":["ticker.AAPL"]}));
    let (mut c, _) = open(
        &server,
        "/ws",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .expect("token accepted");
    c.send(json!({"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT"],"id":7}))
        .await;
    let err = c.next_of_type("error").await;
    assert_eq!(err["code"], "forbidden");
    assert_eq!(err["id"], 7);
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("ticker.MSFT") && !msg.contains("ticker.AAPL"),
        "{msg}"
    );
    let mut ack = c.next_of_type("subscribed").await;
    let epochs = ack.as_object_mut().unwrap().remove("epochs");
    assert!(epochs.is_some_and(|e| e["ticker.AAPL"].is_string()));
    assert_eq!(
        ack,
        json!({"type":"subscribed","topics":["ticker.AAPL"],"id":7}),
        "only the granted topic"
    );
    for _ in 0..5 {
        let t = c.next_of_type("tick").await;
        assert_eq!(t["topic"], "ticker.AAPL");
    }
    // Entirely forbidden: only the error, no ack.
    c.send(json!({"op":"subscribe","topics":["ticker.MSFT"],"id":8}))
        .await;
    let err = c.next_of_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["id"].as_u64()),
        (Some("forbidden"), Some(8))
    );
    c.send(json!({"op":"ping","id":9})).await;
    assert_eq!(c.next_of_type("pong").await["id"], 9);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_token_via_subprotocol() {
    let server = start_server(with_auth).await;
    let private = std::fs::read(fixture_path("jwt_rs256_private.pem")).expect("test key");
    let claims = json!({"exp": unix_now() + 600, "topics": "ticker.MSFT"});
    let token = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&private).expect("pem"),
    )
    .expect("sign");
    let protocols = format!("tickcast.v1, bearer.{token}");
    let (mut c, _) = open(&server, "/ws", &[("sec-websocket-protocol", &protocols)])
        .await
        .expect("RS256 token accepted");
    let ack = c.subscribe(&["ticker.MSFT"], 1).await;
    assert_eq!(ack["topics"], json!(["ticker.MSFT"]));
    assert_eq!(c.next_of_type("tick").await["topic"], "ticker.MSFT");

    // The classic algorithm confusion: HS256 "signed" with the RSA public key must not pass.
    let public = std::fs::read(fixture_path("jwt_rs256_public.pem")).expect("test key");
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&public),
    )
    .expect("sign");
    let (status, body) = refused(&server, &format!("/ws?token={forged}"), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_and_expiring_one_is_closed_1008() {
    let server = start_server(with_auth).await;
    let expired = hs256(json!({"exp": unix_now() - 5, "topics": ["ticker.*"]}));
    let (status, body) = refused(&server, &format!("/ws?token={expired}"), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "token_expired");
    assert_eq!(
        metric(
            &server,
            "tickcast_auth_failures_total{reason=\"token_expired\"}"
        )
        .await,
        Some(1.0)
    );

    let short = hs256(json!({"exp": unix_now() + 3, "topics": ["ticker.*"]}));
    let (mut c, _) = open(&server, &format!("/ws?token={short}"), &[])
        .await
        .expect("still valid at the upgrade");
    c.subscribe(&["ticker.AAPL"], 1).await;
    let close = c.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "token expired");
    // The session counts its end after the close frame is out, so the client may be first.
    let counted = "tickcast_connections_closed_total{reason=\"token_expired\"}";
    wait_until_async("the close is counted", WAIT, || async {
        metric(&server, counted).await == Some(1.0)
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_allowlist() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.auth.allowed_origins = vec!["https://board.example".into()];
    })
    .await;
    let (status, body) = refused(&server, "/ws", &[("origin", "https://evil.example")]).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "origin_not_allowed");
    let (mut c, resp) = open(&server, "/ws", &[("origin", "https://board.example")])
        .await
        .expect("allowed origin");
    assert_eq!(resp.status(), 101);
    c.subscribe(&["ticker.AAPL"], 1).await;
    // Not a browser (no Origin): not a cross-site hijack, allowed.
    Client::connect(&server).await;
    assert_eq!(
        metric(
            &server,
            "tickcast_auth_failures_total{reason=\"origin_not_allowed\"}"
        )
        .await,
        Some(1.0)
    );
    server.shutdown().await;
}

const PUBLISH_KEY: &str = "test-publish-key-0123456789";

fn tick(topic: &str, last: f64) -> String {
    tick_line(topic, last, last, last, 1.0)
}

/// `POST /publish` with `headers`: (status, JSON body).
async fn publish(server: &RunningServer, headers: &str, body: &str) -> (u16, Value) {
    let (status, body) =
        http_request(server.addr(), "POST", "/publish", headers, body.as_bytes()).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// An http feed beside the test config's others.
fn with_http_feed(c: &mut tickcast::Config) {
    let http = tickcast::Config::from_toml("[[feeds]]\nkind = \"http\"\nrequired = false")
        .expect("http feed")
        .feeds;
    c.feeds.extend(http);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_with_auth_on_needs_a_publish_credential_within_its_topics() {
    let server = start_server(|c| {
        with_auth(c);
        with_http_feed(c);
        c.auth.publish_keys = vec![ApiKeySection {
            key: Secret::new(PUBLISH_KEY),
            topics: vec!["ticker.*".into()],
        }];
    })
    .await;
    let injected = tick("ticker.INJECT", 0.01);
    let bearer = |k: &str| format!("Authorization: Bearer {k}\r\n");

    // The reproduction: a text/plain POST with no credential.
    let (status, body) = publish(&server, "Content-Type: text/plain\r\n", &injected).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_credentials"))
    );
    // A read key subscribes but does not publish; a publish key in the URL is not looked at.
    let (status, body) = publish(&server, &bearer(API_KEY), &injected).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("not_a_publisher"))
    );
    let (status, _) = http_request(
        server.addr(),
        "POST",
        &format!("/publish?token={PUBLISH_KEY}"),
        "",
        injected.as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    let reader = hs256(json!({"exp": unix_now() + 60, "topics": ["*"]}));
    let (status, _) = publish(&server, &bearer(&reader), &injected).await;
    assert_eq!(status, 403);
    // Another site's page cannot publish through a browser, even with a credential.
    let cross_site = format!("{}Origin: https://evil.example\r\n", bearer(PUBLISH_KEY));
    let (status, body) = publish(&server, &cross_site, &injected).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    assert_eq!(
        last_seq(&server, "ticker.INJECT"),
        0,
        "nothing refused got through"
    );

    // The publish key publishes within its patterns; the rest of the body is still published.
    let (mut client, _) = open(&server, &format!("/ws?token={API_KEY}"), &[])
        .await
        .expect("reader connects");
    client.subscribe(&["ticker.INJECT"], 1).await;
    let lines = format!("{}\n{}\n", tick("book.X", 1.0), injected);
    let (status, report) = publish(&server, &bearer(PUBLISH_KEY), &lines).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["accepted"].as_u64(), report["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["errors"][0]["reason"], "forbidden", "{report}");
    let t = client.next_of_type("tick").await;
    assert_eq!(
        (t["topic"].as_str(), t["seq"].as_u64()),
        (Some("ticker.INJECT"), Some(1))
    );
    // A token's publish claim is a publish credential too.
    let publisher = hs256(json!({"exp": unix_now() + 60, "publish": ["ticker.INJECT"]}));
    let (status, report) = publish(&server, &bearer(&publisher), &injected).await;
    assert_eq!(
        (status, report["accepted"].as_u64()),
        (200, Some(1)),
        "{report}"
    );

    let m = metrics(&server).await;
    for (sample, value) in [
        (
            "tickcast_auth_failures_total{reason=\"missing_credentials\"}",
            2.0,
        ),
        (
            "tickcast_auth_failures_total{reason=\"not_a_publisher\"}",
            2.0,
        ),
        (
            "tickcast_auth_failures_total{reason=\"origin_not_allowed\"}",
            1.0,
        ),
        (
            "tickcast_feed_parse_errors_total{feed=\"http\",reason=\"forbidden\"}",
            1.0,
        ),
    ] {
        assert_eq!(m.sample(sample), Some(value), "{sample} in\n{m:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_is_refused_when_auth_is_on_and_no_publish_credential_is_configured() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        with_http_feed(c);
        c.auth.enabled = true;
        c.auth.api_keys = vec![ApiKeySection {
            key: Secret::new(API_KEY),
            topics: vec!["*".into()],
        }];
    })
    .await;
    let headers = format!("Authorization: Bearer {API_KEY}\r\n");
    let (status, body) = publish(&server, &headers, &tick("ticker.AAPL", 1.0)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("publish_disabled"))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_only_the_servers_own_pages_may_publish_from_a_browser() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        with_http_feed(c);
    })
    .await;
    let line = tick("ticker.CSRF", 1.0);
    let (status, _) = publish(&server, "Origin: https://evil.example\r\n", &line).await;
    assert_eq!(status, 403);
    assert_eq!(last_seq(&server, "ticker.CSRF"), 0);
    let own = format!("Origin: http://{}\r\n", server.addr());
    let (status, _) = publish(&server, &own, &line).await;
    assert_eq!(status, 200);
    let (status, _) = publish(&server, "", &line).await;
    assert_eq!(status, 200, "no Origin: not a browser (curl, a script)");
    assert_eq!(last_seq(&server, "ticker.CSRF"), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_needs_a_credential_with_auth_on_and_lists_only_entitled_topics() {
    const AAPL_ONLY: &str = "test-aapl-only-key-0123456789";
    let server = start_server(|c| {
        with_auth(c);
        c.auth.api_keys.push(ApiKeySection {
            key: Secret::new(AAPL_ONLY),
            topics: vec!["ticker.AAPL".into()],
        });
    })
    .await;
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    wait_for_seq(&server, "ticker.MSFT", 1).await;
    let (status, _, body) = http_get(&server, "/topics").await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    let names = |body: &[u8]| -> Vec<String> {
        let v: Value = serde_json::from_slice(body).expect("json");
        v["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .map(|t| t["topic"].as_str().expect("topic").to_string())
            .collect()
    };
    let (status, _, body) = http_get(&server, &format!("/topics?token={AAPL_ONLY}")).await;
    assert_eq!(status, 200);
    assert_eq!(names(&body), ["ticker.AAPL"]);
    let (status, _, body) = http_get(&server, &format!("/topics?token={API_KEY}")).await;
    assert_eq!(status, 200);
    assert_eq!(names(&body), ["ticker.AAPL", "ticker.MSFT"]);
    // Health stays public.
    assert_eq!(http_get(&server, "/healthz").await.0, 200);
    assert_eq!(http_get(&server, "/readyz").await.0, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_protects_metrics() {
    const SCRAPE: &str = "test-scrape-token-0123456789";
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.auth.metrics_token = Some(Secret::new(SCRAPE));
    })
    .await;
    assert_eq!(http_get(&server, "/metrics").await.0, 401);
    let auth = format!("Authorization: Bearer {SCRAPE}\r\n");
    let (status, body) = http_request(server.addr(), "GET", "/metrics", &auth, b"").await;
    assert_eq!(status, 200);
    assert!(Metrics::parse(&String::from_utf8_lossy(&body))
        .sample("tickcast_connections_open{transport=\"ws\"}")
        .is_some());
    server.shutdown().await;
}
