//! The HTTP surface: health, readiness, topic listing, metrics, the embedded dashboard.

use crate::support::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_topics_metrics_and_dashboard() {
    let server = start_server(|c| feed(c, &["AAPL", "MSFT"], 200.0)).await;
    let (status, _, body) = http_get(&server, "/healthz").await;
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"{\"status\":\"ok\"}"[..])
    );

    wait_for_seq(&server, "ticker.MSFT", 2).await;
    let (status, _, body) = http_get(&server, "/readyz").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let (status, _, body) = http_get(&server, "/topics").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let all = v["topics"].as_array().unwrap();
    // The synthetic feed's books, trades and candles are listed too, after the quotes.
    let topics: Vec<&Value> = all
        .iter()
        .filter(|t| t["topic"].as_str().unwrap().starts_with("ticker."))
        .collect();
    assert_eq!(topics.len(), 2, "{all:?}");
    assert!(all.iter().any(|t| t["topic"] == "book.AAPL"), "{all:?}");
    assert_eq!(topics[0]["topic"], "ticker.AAPL");
    assert!(topics[0]["seq"].as_u64().unwrap() >= 1);
    assert!(topics[0]["last"].is_number());

    let (status, head, body) = http_get(&server, "/metrics").await;
    assert_eq!(status, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/plain; version=0.0.4"));
    let m = Metrics::parse(&String::from_utf8(body).unwrap());
    for name in [
        "tickcast_connections_open{transport=\"ws\"}",
        "tickcast_connections_open{transport=\"sse\"}",
        "tickcast_messages_sent_total{transport=\"ws\"}",
        "tickcast_messages_sent_total{transport=\"sse\"}",
        "tickcast_feed_ticks_total{feed=\"synthetic\"}",
        // Exported from the start, before any connection lingers.
        "tickcast_connections_lingering",
        "tickcast_lingering_closes_total{outcome=\"client_closed\"}",
        "tickcast_lingering_closes_total{outcome=\"shutdown\"}",
        "tickcast_lingering_discarded_bytes_total",
    ] {
        assert!(m.sample(name).is_some(), "{name} missing");
    }

    let (status, head, body) = http_get(&server, "/").await;
    assert_eq!(status, 200);
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html"));
    assert!(lower.contains("content-security-policy: default-src 'self'"));
    assert!(String::from_utf8_lossy(&body).contains("<html"));
    // Every .js file of the dashboard is served, and of its copy of the JS SDK (`sdk/`): app.js imports the detail
    // view's modules and the SDK's, and a module left out of the embedded assets would break the page (a failed
    // import stops the whole module graph).
    let web = repo_root().join("dashboards/web");
    let mut assets = vec![("/style.css".to_string(), "text/css")];
    for dir in ["", "sdk/"] {
        for entry in std::fs::read_dir(web.join(dir))
            .expect("read dashboards/web")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".js") {
                assets.push((format!("/{dir}{name}"), "text/javascript"));
            }
        }
    }
    assert!(assets.iter().any(|(p, _)| p == "/app.js"), "{assets:?}");
    assert!(
        assets.iter().any(|(p, _)| p == "/sdk/index.js"),
        "{assets:?}"
    );
    for (path, ty) in &assets {
        let (status, head, _) = http_get(&server, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(head.to_ascii_lowercase().contains(ty), "{path}");
    }
    assert_eq!(http_get(&server, "/nope").await.0, 404);
    assert_eq!(
        http_get(&server, "/ws").await.0,
        426,
        "plain GET on /ws asks for an upgrade"
    );

    // Once shutdown starts, readiness turns false with a reason.
    server.running().state().set_draining();
    let (status, _, body) = http_get(&server, "/readyz").await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("shutting down"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_upgrades_with_503() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.limits.max_connections = 2;
    })
    .await;
    let _a = Client::connect(&server).await;
    let _b = Client::connect(&server).await;
    let err = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect_err("third is refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 503),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        metric(
            &server,
            "tickcast_limit_rejections_total{limit=\"max_connections\"}"
        )
        .await,
        Some(1.0)
    );
    server.shutdown().await;
}
