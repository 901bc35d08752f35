//! Ingest failover over NATS, end to end: ingest nodes run as real child processes of the
//! `tickcast` binary (so they can be killed and paused like real ones), both running the same
//! synthetic feed against a real `nats-server -js`; a gateway in this process serves an independent
//! WebSocket client whose every message goes through a [`SeqLedger`] (no seq goes back or repeats,
//! every skipped seq is announced by a `gap`). Every wait is bounded; takeover times are printed,
//! never asserted.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const TOPICS: [&str; 2] = ["ticker.AAPL", "ticker.MSFT"];
/// The trade topics of the same feed (its default `market_rate`), a candle topic and a book: all
/// cross NATS.
const TRADES: [&str; 4] = ["trade.AAPL", "trade.MSFT", "bar.1s.AAPL", "book.AAPL"];

/// An ingest node as a child process: synthetic feed over AAPL and MSFT, every tick to NATS.
struct IngestNode {
    child: Reaped,
    addr: SocketAddr,
}

impl IngestNode {
    async fn start(nats: &NatsServer) -> IngestNode {
        let node = Self::spawn(nats);
        wait_for_listener(node.addr).await;
        node
    }

    fn spawn(nats: &NatsServer) -> IngestNode {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = tickcast_command(addr)
            .args(["--role", "ingest", "--nats-url", &nats.url()])
            .args(["--symbols", "AAPL,MSFT", "--rate", "400", "--log", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the tickcast binary");
        IngestNode {
            child: Reaped(Some(child)),
            addr,
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the process.
    fn signal(&mut self, signal: &str) {
        let pid = self.child.child().id().to_string();
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid}");
    }

    /// Kills the process at once (SIGKILL): no flush, no goodbye.
    fn kill(self) {
        drop(self.child);
    }

    async fn metric(&self, sample: &str) -> f64 {
        metric_at(self.addr, sample).await.unwrap_or(-1.0)
    }

    async fn leads(&self) -> bool {
        self.metric("tickcast_ingest_leader").await == 1.0
    }
}

/// A client on `g` subscribed to [`TOPICS`], with its ledger.
async fn watcher(g: &RunningServer) -> (Client, SeqLedger) {
    let mut c = Client::connect(g).await;
    c.subscribe(&TOPICS, 1).await;
    (c, SeqLedger::default())
}

/// Reads `n` ticks (and whatever comes between), every message through the ledger.
async fn read_ticks(c: &mut Client, ledger: &mut SeqLedger, n: u64) {
    let target = ledger.ticks + n;
    while ledger.ticks < target {
        let v = c.next_json().await;
        if let Err(e) = ledger.observe(&v) {
            panic!("{e}");
        }
    }
}

/// Waits (bounded) until `node` leads; returns how long that took.
async fn until_leads(node: &IngestNode, what: &str) -> Duration {
    let t0 = Instant::now();
    wait_until_async(what, WAIT, || node.leads()).await;
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_nodes_started_at_once_elect_exactly_one_leader() {
    let nats = NatsServer::start();
    let (a, b) = (IngestNode::spawn(&nats), IngestNode::spawn(&nats));
    wait_for_listener(a.addr).await;
    wait_for_listener(b.addr).await;
    wait_until_async("one of the two leads", WAIT, || async {
        a.leads().await || b.leads().await
    })
    .await;
    let g = nats_gateway(&nats).await;
    let (mut c, mut ledger) = watcher(&g).await;
    // Over a few seconds of ticks, exactly one leads at every look, and it stays the same one.
    let a_leads = a.leads().await;
    for _ in 0..10 {
        read_ticks(&mut c, &mut ledger, 100).await;
        assert_eq!(a.leads().await, a_leads, "the leader changed");
        assert_eq!(b.leads().await, !a_leads, "not exactly one leader");
    }
    let (leader, standby) = if a_leads { (&a, &b) } else { (&b, &a) };
    assert_eq!(leader.metric("tickcast_ingest_takeovers_total").await, 1.0);
    assert_eq!(standby.metric("tickcast_ingest_takeovers_total").await, 0.0);
    // The standby's feed runs, and discards what the leader publishes.
    assert!(
        standby
            .metric("tickcast_ingest_standby_discards_total")
            .await
            > 0.0
    );
    assert_eq!(
        leader.metric("tickcast_ingest_refused_appends_total").await,
        0.0
    );
    assert_eq!(ledger.markers(), 0, "{:?}", ledger.gaps);
}

/// Reads messages into `ledger` until `done` says so (bounded: at most `limit` messages, each
/// within the client's timeout); `book` messages also go into `book`, which checks each checksum.
async fn read_until(
    c: &mut Client,
    ledger: &mut SeqLedger,
    book: &mut BookBuilder,
    limit: u64,
    what: &str,
    done: impl Fn(&SeqLedger) -> bool,
) {
    let mut n = 0;
    while !done(ledger) {
        let v = c.next_json().await;
        if let Err(e) = ledger.observe(&v) {
            panic!("{e}");
        }
        if v["type"] == "book" {
            book.apply(&v).unwrap_or_else(|e| panic!("{e}"));
        }
        n += 1;
        assert!(n < limit, "{what}: not after {limit} messages");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_and_every_seq_continues_or_is_announced() {
    let nats = NatsServer::start();
    let a = IngestNode::start(&nats).await;
    until_leads(&a, "the first node leads").await;
    let b = IngestNode::start(&nats).await;
    // Quotes, trades, candles and books: all cross NATS, all must continue.
    let all = format!(
        "[[feeds]]\nkind = \"nats\"\nurl = \"{}\"\nsubjects = [\"tickcast.>\"]\n",
        nats.url()
    );
    let g = nats_gateway_with(&nats, |c| c.feeds = feeds(&all)).await;
    let topics: Vec<&str> = TOPICS.iter().chain(&TRADES).copied().collect();
    let mut c = Client::connect(&g).await;
    c.subscribe(&topics, 1).await;
    let mut ledger = SeqLedger::default();
    let mut book = BookBuilder::default();
    read_ticks(&mut c, &mut ledger, 200).await;
    read_until(
        &mut c,
        &mut ledger,
        &mut book,
        100_000,
        "a trade of each symbol and a candle",
        |l| TRADES.iter().all(|t| l.last(t).is_some()),
    )
    .await;
    assert!(
        !b.leads().await,
        "the second node is a standby while the first leads"
    );
    let before: Vec<u64> = topics.iter().map(|t| ledger.last(t).unwrap_or(0)).collect();

    a.kill();
    let took = until_leads(&b, "the standby takes over").await;
    eprintln!("takeover {} ms after the kill", took.as_millis());
    // Every topic goes on past where it was, and what the dead leader may have lost is
    // announced: at least one `upstream` gap per topic, each checked by the ledger.
    let snapshots = book.snapshots;
    read_until(
        &mut c,
        &mut ledger,
        &mut book,
        100_000,
        "every topic continues",
        |l| {
            topics
                .iter()
                .zip(&before)
                .all(|(t, b4)| l.last(t).unwrap_or(0) > b4 + 1)
        },
    )
    .await;
    assert!(
        ledger.gaps.get("upstream").copied().unwrap_or(0) >= topics.len() as u64,
        "{:?}",
        ledger.gaps
    );
    assert_eq!(b.metric("tickcast_ingest_takeovers_total").await, 1.0);
    // The book went on from the new leader's snapshot, every checksum matching on either side.
    assert!(book.snapshots > snapshots, "no snapshot after the takeover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_resumed_after_the_takeover_publishes_nothing_stale() {
    let nats = NatsServer::start();
    let mut a = IngestNode::start(&nats).await;
    until_leads(&a, "the first node leads").await;
    let b = IngestNode::start(&nats).await;
    let g = nats_gateway(&nats).await;
    let (mut c, mut ledger) = watcher(&g).await;
    read_ticks(&mut c, &mut ledger, 200).await;

    // Partitioned in time: it still believes it leads, and its feed has ticks to send.
    a.signal("-STOP");
    let took = until_leads(&b, "the standby takes over from the paused leader").await;
    eprintln!("takeover {} ms after SIGSTOP", took.as_millis());
    read_ticks(&mut c, &mut ledger, 200).await;
    a.signal("-CONT");
    // It steps down on whichever it meets first: the new leader's heartbeats queued while it was
    // paused, or the stream refusing its next append. Nothing it sends reaches a client either way
    // (the ledger below would see a seq repeat or go back).
    wait_until_async("the resumed node steps down", WAIT, || async {
        a.metric("tickcast_ingest_step_downs_total").await >= 1.0
    })
    .await;
    assert!(!a.leads().await);
    eprintln!(
        "the resumed node's appends refused by the stream: {}",
        a.metric("tickcast_ingest_refused_appends_total").await
    );
    read_ticks(&mut c, &mut ledger, 400).await;
    assert!(b.leads().await, "the new leader keeps the lease");
    assert!(!a.leads().await, "the old one stays a standby");
    eprintln!("gaps seen by the client: {:?}", ledger.gaps);
}
