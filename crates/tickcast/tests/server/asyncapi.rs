//! `docs/asyncapi.yaml` against a real server: the cases below drive the server to send every
//! message type it sends (ticks of several channels, the snapshot, `subscribed` with and without
//! `pending` and with a `recovery`, `unsubscribed`, `pong`, an `upstream` `gap`, a `heartbeat`, and
//! every error code), every text frame it sends is
//! recorded as NDJSON exactly as received, and so is every well-formed request the client sent. Then
//! `node docs/test/validate.mjs` parses the document with the real `@asyncapi/parser` (failing on
//! any error diagnostic) and validates each message against the schema of the type it claims.
//!
//! Adding a message type is one more [`Case`]: what to send, and the message that must come back.
//! The test then
//! requires the validator to have validated it, and fails for a type or error code the document
//! declares that no case produces, unless it is listed in [`NOT_PRODUCED`].
//!
//! Needs `node` and `npm ci` in `docs/test/` (`./.ci/test-all` does both); when either is missing the
//! test fails and says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickcast::config::ApiKeySection;
use tickcast_gateway::auth::Secret;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// Message types and error codes the document declares that no case here produces. A type
/// documented ahead of the server goes here until a case in [`CASES`] produces it. `reset` is sent
/// only by a gateway fed by NATS when the ingest tier's epoch changes: it needs a nats-server and
/// an ingest node restarted without its stream, which `tests/scaleout.rs` drives (and checks the
/// exact message), not this single-node test.
const NOT_PRODUCED: &[&str] = &["reset"];

/// Upper bound for the validator (it parses the document, then the recorded messages).
const NODE_WAIT: Duration = Duration::from_secs(60);

const API_KEY: &str = "asyncapi-test-key-0123456789";

/// One step of a case.
enum Step {
    /// A well-formed request: sent, and validated against the document's request schemas.
    Request(&'static str),
    /// A text frame that is wrong on purpose: sent, not validated.
    Malformed(&'static str),
    /// A binary frame.
    Binary(&'static [u8]),
    /// A tick line published through the server's TCP feed.
    Publish(&'static str),
    /// A well-formed request sent again and again, each answer read before the next is sent, until
    /// the awaited message comes (at most `times`).
    Repeat { request: &'static str, times: u32 },
}

/// A message that ends a case: its `type`, and optionally one string field's value.
struct Awaits {
    ty: &'static str,
    field: Option<(&'static str, &'static str)>,
}

const fn ty(ty: &'static str) -> Awaits {
    Awaits { ty, field: None }
}

const fn error(code: &'static str) -> Awaits {
    Awaits {
        ty: "error",
        field: Some(("code", code)),
    }
}

const fn tick(topic: &'static str) -> Awaits {
    of("tick", topic)
}

const fn of(ty: &'static str, topic: &'static str) -> Awaits {
    Awaits {
        ty,
        field: Some(("topic", topic)),
    }
}

/// One thing the server must be made to send.
struct Case {
    /// What it shows, named when it fails.
    name: &'static str,
    /// On a connection of its own (for requests that would disturb the shared one).
    own_connection: bool,
    steps: &'static [Step],
    /// Messages are read (and recorded) until this one comes.
    awaits: Awaits,
}

/// In order, on one shared connection unless a case asks for its own. The server: a synthetic feed
/// of `ticker.AAPL` and `ticker.MSFT`, a TCP feed for other channels, authentication on with a key
/// for every channel but `secret`, and small limits (see [`configure`]).
const CASES: &[Case] = &[
    Case {
        name: "subscribe is acknowledged",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["ticker.AAPL"],"id":1}"#,
        )],
        awaits: ty("subscribed"),
    },
    Case {
        name: "the snapshot: the topic's latest tick, right after the ack",
        own_connection: false,
        steps: &[],
        awaits: tick("ticker.AAPL"),
    },
    Case {
        name: "a live tick of the synthetic feed",
        own_connection: false,
        steps: &[],
        awaits: tick("ticker.AAPL"),
    },
    Case {
        name: "a topic without data is acknowledged as pending",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["nodata.PENDING","ticker.MSFT"],"id":"with-pending"}"#,
        )],
        awaits: ty("subscribed"),
    },
    Case {
        name: "a tick of another channel published through the TCP feed",
        own_connection: false,
        steps: &[
            Step::Publish(
                r#"{"topic":"fx.EUR-USD","bid":1.08012,"ask":1.08015,"last":1.08013,"size":0.0125}"#,
            ),
            Step::Request(r#"{"op":"subscribe","topics":["fx.EUR-USD"],"id":2}"#),
        ],
        awaits: tick("fx.EUR-USD"),
    },
    Case {
        name: "a book snapshot: the whole book, right after the ack",
        own_connection: false,
        steps: &[
            Step::Publish(
                r#"{"type":"book","topic":"book.XBT","snapshot":true,"bids":[["64000.5","1.25"],["64000.0","2"]],"asks":[["64001.0","0.5"]]}"#,
            ),
            Step::Request(r#"{"op":"subscribe","topics":["book.XBT"],"id":3}"#),
        ],
        awaits: of("book", "book.XBT"),
    },
    Case {
        name: "a book delta",
        own_connection: false,
        steps: &[Step::Publish(
            r#"{"type":"book","topic":"book.XBT","bids":[["64000.5","0"]],"asks":[["64001.5","1"]]}"#,
        )],
        awaits: of("book", "book.XBT"),
    },
    Case {
        name: "a trade",
        own_connection: false,
        steps: &[
            Step::Request(r#"{"op":"subscribe","topics":["trade.XBT"],"id":"trades"}"#),
            Step::Publish(
                r#"{"type":"trade","topic":"trade.XBT","price":"64001.0","size":"0.012","side":"buy","trade_id":"t-1"}"#,
            ),
        ],
        awaits: of("trade", "trade.XBT"),
    },
    Case {
        name: "a candle built from the trades",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["bar.1m.XBT"],"id":"candles"}"#,
        )],
        awaits: of("bar", "bar.1m.XBT"),
    },
    Case {
        name: "a bar tick",
        own_connection: false,
        steps: &[
            Step::Publish(
                r#"{"topic":"bar:1m.AAPL","bid":189,"ask":189.5,"last":189.25,"size":120000}"#,
            ),
            Step::Request(r#"{"op":"subscribe","topics":["bar:1m.AAPL"],"id":4}"#),
        ],
        awaits: tick("bar:1m.AAPL"),
    },
    Case {
        name: "a tick whose feed numbers its messages",
        own_connection: false,
        steps: &[
            Step::Publish(r#"{"topic":"fx.GAP","bid":1,"ask":2,"last":1.5,"size":1,"seq":1}"#),
            Step::Request(r#"{"op":"subscribe","topics":["fx.GAP"],"id":"gap"}"#),
        ],
        awaits: tick("fx.GAP"),
    },
    Case {
        name: "the feed lost two messages: an upstream gap marker",
        own_connection: false,
        steps: &[Step::Publish(
            r#"{"topic":"fx.GAP","bid":1,"ask":2,"last":1.5,"size":1,"seq":4}"#,
        )],
        awaits: ty("gap"),
    },
    Case {
        name: "a heartbeat of a topic without ticks",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["nodata.PENDING"],"heartbeat_ms":100,"id":"hb"}"#,
        )],
        awaits: ty("heartbeat"),
    },
    Case {
        name: "a heartbeat interval out of bounds",
        own_connection: false,
        steps: &[Step::Malformed(
            r#"{"op":"subscribe","topics":["ticker.MSFT"],"heartbeat_ms":1,"id":"hb-bad"}"#,
        )],
        awaits: error("invalid_field"),
    },
    Case {
        name: "a recovery from another epoch: the ack says why not",
        own_connection: true,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["ticker.AAPL"],"since":{"ticker.AAPL":{"seq":1,"epoch":"elsewhere"}},"id":"since"}"#,
        )],
        awaits: ty("subscribed"),
    },
    Case {
        name: "ping with an id",
        own_connection: false,
        steps: &[Step::Request(r#"{"op":"ping","id":5}"#)],
        awaits: ty("pong"),
    },
    Case {
        name: "ping without an id",
        own_connection: false,
        steps: &[Step::Request(r#"{"op":"ping"}"#)],
        awaits: ty("pong"),
    },
    Case {
        name: "not JSON",
        own_connection: false,
        steps: &[Step::Malformed("{not json")],
        awaits: error("bad_json"),
    },
    Case {
        name: "JSON that is not a request",
        own_connection: false,
        steps: &[Step::Malformed(r#"[1,2]"#)],
        awaits: error("bad_request"),
    },
    Case {
        name: "an op that does not exist",
        own_connection: false,
        steps: &[Step::Malformed(r#"{"op":"fly","id":6}"#)],
        awaits: error("unknown_op"),
    },
    Case {
        name: "an invalid topic",
        own_connection: false,
        steps: &[Step::Malformed(
            r#"{"op":"subscribe","topics":["bad topic!"],"id":"bad-topic"}"#,
        )],
        awaits: error("invalid_topic"),
    },
    Case {
        name: "a binary frame",
        own_connection: false,
        steps: &[Step::Binary(&[1, 2, 3])],
        awaits: error("binary_not_supported"),
    },
    Case {
        name: "a topic outside the key's entitlements",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["secret.AAPL"],"id":7}"#,
        )],
        awaits: error("forbidden"),
    },
    Case {
        name: "more topics than a connection may hold",
        own_connection: true,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["ticker.A","ticker.B","ticker.C","ticker.D","ticker.E","ticker.F","ticker.G","ticker.H","ticker.I","ticker.J","ticker.K","ticker.L","ticker.M"],"id":8}"#,
        )],
        awaits: error("too_many_topics"),
    },
    Case {
        name: "a wildcard with a throttle",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["ticker.*","trade.BTC-USD@100ms"],"throttle_ms":250,"id":"wild"}"#,
        )],
        awaits: ty("subscribed"),
    },
    Case {
        name: "a malformed throttle suffix",
        own_connection: false,
        steps: &[Step::Malformed(
            r#"{"op":"subscribe","topics":["ticker.AAPL@fast"],"id":"suffix"}"#,
        )],
        awaits: error("invalid_field"),
    },
    Case {
        name: "more wildcards than a connection may hold",
        own_connection: true,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["ticker.*","trade.*","book.*"],"id":"wilds"}"#,
        )],
        awaits: error("too_many_patterns"),
    },
    Case {
        name: "unsubscribing a wildcard",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"unsubscribe","topics":["ticker.*"],"id":"unwild"}"#,
        )],
        awaits: ty("unsubscribed"),
    },
    Case {
        name: "requests faster than the message rate",
        own_connection: true,
        steps: &[Step::Repeat {
            request: r#"{"op":"ping","id":9}"#,
            times: 200,
        }],
        awaits: error("rate_limited"),
    },
    Case {
        name: "unsubscribe is acknowledged",
        own_connection: false,
        steps: &[Step::Request(
            r#"{"op":"unsubscribe","topics":["ticker.AAPL","trade.BTC-USD"],"id":10}"#,
        )],
        awaits: ty("unsubscribed"),
    },
    // Last: it leaves the server's room for topics without data full.
    Case {
        name: "more topics without data than the server waits on",
        own_connection: true,
        steps: &[Step::Request(
            r#"{"op":"subscribe","topics":["nodata.L1","nodata.L2","nodata.L3","nodata.L4","nodata.L5","nodata.L6","nodata.L7"],"id":11}"#,
        )],
        awaits: error("topic_limit"),
    },
];

/// The limits and credentials the cases count on.
fn configure(c: &mut tickcast::Config) {
    c.feeds = feeds(
        "[[feeds]]\nkind = \"synthetic\"\nchannel = \"ticker\"\nsymbols = [\"AAPL\", \"MSFT\"]\nrate = 40\nmarket_rate = 0\n\
         [[feeds]]\nkind = \"tcp\"\nname = \"pub\"\nlisten = \"127.0.0.1:0\"",
    );
    c.auth.enabled = true;
    c.auth.api_keys = vec![ApiKeySection {
        key: Secret::new(API_KEY),
        topics: [
            "ticker.*", "trade.*", "book.*", "bar.*", "bar:1m.*", "fx.*", "nodata.*",
        ]
        .map(String::from)
        .to_vec(),
    }];
    // The too_many_topics case asks for 13, the topic_limit case for 7 topics without data (with
    // at most 4 others: nodata.PENDING and the published channels' topics if a subscribe overtakes
    // their publish).
    c.limits.max_topics_per_connection = 12;
    c.limits.max_requested_topics = 6;
    // The too_many_patterns case asks for 3.
    c.limits.max_patterns_per_connection = 2;
    // The shared connection sends ~20 messages; the rate case more than 30.
    c.limits.max_messages_per_second = 1;
    c.limits.message_burst = 30;
    c.limits.max_rate_violations = 10;
}

/// What the run saw: every server text frame and every well-formed request, as NDJSON lines.
#[derive(Default)]
struct Recording {
    messages: Vec<String>,
    requests: Vec<String>,
}

impl Recording {
    /// The next text frame on `c`, recorded; pings, pongs and binary frames are skipped.
    async fn next_text(&mut self, c: &mut Client, case: &str) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, c.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{case}: no message within {WAIT:?}"));
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let text = t.as_str();
                    assert!(!text.contains('\n'), "{case}: a newline in {text:?}");
                    self.messages.push(text.to_string());
                    return serde_json::from_str(text)
                        .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {text}"));
                }
                Some(Ok(Message::Close(frame))) => panic!("{case}: connection closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("{case}: {e}"),
                None => panic!("{case}: connection ended"),
            }
        }
    }
}

impl Awaits {
    fn matches(&self, v: &Value) -> bool {
        v["type"] == self.ty && self.field.is_none_or(|(k, want)| v[k] == want)
    }

    fn describe(&self) -> String {
        match self.field {
            None => format!("a {} message", self.ty),
            Some((k, v)) => format!("a {} message with {k} {v}", self.ty),
        }
    }
}

async fn connect(server: &RunningServer) -> Client {
    Client::connect_url(&format!("{}?token={API_KEY}", server.ws_url())).await
}

async fn run_case(
    case: &Case,
    c: &mut Client,
    publisher: &mut tokio::net::TcpStream,
    rec: &mut Recording,
) {
    let name = case.name;
    for step in case.steps {
        match step {
            Step::Request(text) => {
                rec.requests.push(text.to_string());
                c.send_text(text).await;
            }
            Step::Malformed(text) => c.send_text(text).await,
            Step::Binary(bytes) => c.ws.send(Message::binary(bytes.to_vec())).await.unwrap(),
            Step::Publish(line) => publisher
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("publish through the tcp feed"),
            Step::Repeat { request, times } => {
                rec.requests.push(request.to_string());
                for _ in 0..*times {
                    c.send_text(request).await;
                    if case.awaits.matches(&rec.next_text(c, name).await) {
                        return;
                    }
                }
                panic!(
                    "{name}: {times} × {request} never got {}",
                    case.awaits.describe()
                );
            }
        }
    }
    for _ in 0..10_000 {
        if case.awaits.matches(&rec.next_text(c, name).await) {
            return;
        }
    }
    panic!("{name}: never got {}", case.awaits.describe());
}

/// The validator's directory, or a panic that says what is missing and how to get it.
fn validator_dir() -> PathBuf {
    let dir = repo_root().join("docs/test");
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut missing = Vec::new();
    if !node {
        missing.push("`node` on PATH".to_string());
    }
    for package in ["@asyncapi/parser", "ajv"] {
        if !dir.join("node_modules").join(package).is_dir() {
            missing.push(format!(
                "{} (run `npm ci` in {})",
                dir.join("node_modules").join(package).display(),
                dir.display()
            ));
        }
    }
    if !missing.is_empty() {
        let ci = if std::env::var_os("CI").is_some() {
            " (CI is set: the test command must install them)"
        } else {
            ""
        };
        panic!(
            "the AsyncAPI validator's prerequisites are missing{ci}: {}. Run ./.ci/test-all, which \
             runs `npm ci` in docs/test when its packages are missing.",
            missing.join("; ")
        );
    }
    dir
}

/// Runs the validator on the recording; its JSON summary, or a panic with its output.
async fn validate(dir: &Path, tmp: &TempDir, rec: &Recording) -> Value {
    let ndjson = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let messages = tmp.write("messages.ndjson", &ndjson(&rec.messages));
    let requests = tmp.write("requests.ndjson", &ndjson(&rec.requests));
    let summary = tmp.join("summary.json");
    let out = std::fs::File::create(tmp.join("validator.log")).expect("validator log");
    let mut node = Reaped(Some(
        Command::new("node")
            .arg(dir.join("validate.mjs"))
            .arg("--summary")
            .arg(&summary)
            .arg("--requests")
            .arg(&requests)
            .arg(&messages)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn node"),
    ));
    let deadline = Instant::now() + NODE_WAIT;
    let status = loop {
        if let Some(status) = node.child().try_wait().expect("wait for node") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "validate.mjs did not finish within {NODE_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(tmp.join("validator.log")).unwrap_or_default();
    eprintln!("--- node docs/test/validate.mjs ---\n{log}");
    assert!(
        status.success(),
        "validate.mjs failed ({status}); its output is above"
    );
    let summary = std::fs::read_to_string(&summary).expect("validator summary");
    serde_json::from_str(&summary).expect("summary is JSON")
}

/// The names of a summary object's entries with a count of at least 1.
fn seen(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, n)| n.as_u64() >= Some(1))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_the_server_sends_matches_docs_asyncapi_yaml() {
    let dir = validator_dir();
    let server = start_server(configure).await;
    // Both synthetic topics have data: the first tick after the ack is the snapshot, and
    // ticker.MSFT is not pending.
    wait_for_seq(&server, "ticker.AAPL", 2).await;
    wait_for_seq(&server, "ticker.MSFT", 1).await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    let mut shared = connect(&server).await;
    let mut rec = Recording::default();
    for case in CASES {
        if case.own_connection {
            let mut own = connect(&server).await;
            run_case(case, &mut own, &mut publisher, &mut rec).await;
        } else {
            run_case(case, &mut shared, &mut publisher, &mut rec).await;
        }
    }
    server.shutdown().await;

    let tmp = TempDir::new("asyncapi");
    let summary = validate(&dir, &tmp, &rec).await;
    assert_eq!(summary["ok"], true, "{summary:#}");
    let messages = &summary["messages"];
    assert_eq!(
        messages["lines"].as_u64(),
        Some(rec.messages.len() as u64),
        "every recorded message was read"
    );
    let (types, codes, channels) = (
        seen(&messages["types"]),
        seen(&messages["errorCodes"]),
        seen(&messages["tickChannels"]),
    );
    // Every case's message was validated, not only received.
    for case in CASES {
        let a = &case.awaits;
        assert!(types.contains(a.ty), "{}: no valid {}", case.name, a.ty);
        match a.field {
            Some(("code", code)) => assert!(codes.contains(code), "{}: {code}", case.name),
            // The validator counts channels of ticks; other types name their channel themselves.
            Some(("topic", topic)) if a.ty == "tick" => {
                let channel = topic.split_once('.').map_or(topic, |(c, _)| c);
                assert!(channels.contains(channel), "{}: {channel}", case.name);
            }
            _ => {}
        }
    }
    // Every type and error code the document declares came from the real server, but for those
    // the server does not send yet.
    let unseen = |declared: &Value, seen: &BTreeSet<String>| -> Vec<String> {
        names(declared)
            .into_iter()
            .filter(|n| !seen.contains(n) && !NOT_PRODUCED.contains(&n.as_str()))
            .collect()
    };
    assert_eq!(
        unseen(&summary["serverTypes"], &types),
        Vec::<String>::new(),
        "message types declared in docs/asyncapi.yaml that no case produced"
    );
    assert_eq!(
        unseen(&summary["documentErrorCodes"], &codes),
        Vec::<String>::new(),
        "error codes declared in docs/asyncapi.yaml that no case produced"
    );
    for name in NOT_PRODUCED {
        assert!(
            !types.contains(*name) && !codes.contains(*name),
            "the server sends {name} now: give it a case and take it off NOT_PRODUCED"
        );
    }
    // The document's error codes are the server's.
    let server_codes: BTreeSet<String> = tickcast_core::protocol::ProtocolErrorKind::CODES
        .iter()
        .map(|c| c.to_string())
        .collect();
    let documented = names(&summary["documentErrorCodes"]);
    assert!(
        server_codes.is_subset(&documented),
        "codes the server has that docs/asyncapi.yaml lacks: {:?}",
        server_codes.difference(&documented).collect::<Vec<_>>()
    );
    // The optional fields of the replies were there to be validated.
    for (what, needle) in [
        ("an ack with pending", r#""pending":["nodata.PENDING"]"#),
        ("an ack with epochs", r#""epochs":{"ticker.AAPL":"#),
        (
            "an ack with a recovery outcome",
            r#""recovery":{"ticker.AAPL":{"recovered":false,"reason":"epoch_changed"}}"#,
        ),
        ("an error naming its field", r#""field":"heartbeat_ms""#),
        ("a string id echoed", r#""id":"with-pending""#),
    ] {
        assert!(
            rec.messages.iter().any(|m| m.contains(needle)),
            "no message with {what}:\n{}",
            rec.messages.join("\n")
        );
    }
    // Requests were validated as well.
    assert_eq!(
        seen(&summary["requests"]["types"]),
        ["ping", "subscribe", "unsubscribe"]
            .map(String::from)
            .into(),
        "{summary:#}"
    );
}
