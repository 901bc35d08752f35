/**
 * tickcast client (protocol v2, docs/protocol.md): one WebSocket that reconnects with full-jitter exponential
 * backoff, resubscribes with `since` (last seq + epoch per topic) and reports what it could not recover, gaps
 * (server markers and any unannounced seq jump), heartbeats, stale feeds and server errors as typed values.
 * Market data: `trade` and `bar` events, and order books kept from `book.<SYM>` with every checksum verified
 * ({@link TickcastClient.book}, {@link OrderBook}).
 * When the WebSocket cannot get through (a proxy that refuses upgrades) it falls back to the server's Server-Sent
 * Events stream (`transport`, src/sse.ts); a refused credential fails fast with a `TickcastError` `unauthorized`.
 * Zero runtime dependencies in browsers; in Node without a global WebSocket it loads the `ws` package.
 * @packageDocumentation
 */

import { OrderBook, type BookMessage, type BookOutcome } from "./book.js";
import type { ClockSample } from "./clock.js";
import { ClockSync } from "./clocksync.js";
import { TickcastError, handshakeStatus, isAuthClose, refusal } from "./errors.js";
import { parseFrame, type InvalidFrame } from "./frames.js";
import { openSse, probe, siblingUrl, sseResumeId, sseStreamUrl, type SseEnd, type SseStream, type SseTopic } from "./sse.js";
import { isPattern, matches, patternFor, refusedTopics } from "./wildcard.js";

export { TickcastError } from "./errors.js";
export { parseFrame, type InvalidFrame } from "./frames.js";
export { isPattern, matches, patternFor, refusedTopics } from "./wildcard.js";

export {
  OrderBook, CHECKSUM_LEVELS, MAX_SCALE, checksumDigits, crc32, decimalSub, parseDecimal,
  type BookLevel, type BookMessage, type BookOutcome,
} from "./book.js";
export {
  ClockWindow, bestSample, clockSample, correctedLatency, localNowUs, type ClockSample, type CorrectedLatency,
} from "./clock.js";

/** One tick as the server sent it (prices as JSON numbers with the feed's precision). */
export interface Tick {
  /** Always `"tick"`. */
  type: "tick";
  /** The topic, `<channel>.<symbol>` (e.g. `ticker.AAPL`). */
  topic: string;
  /** Per-topic sequence number; consecutive unless a `gap` event announced the missing ones. */
  seq: number;
  /** Ingest time, unix microseconds. */
  ts: number;
  [field: string]: unknown;
}

/** One trade on `trade.<SYM>` (never conflated; a drop is announced by a `gap` with reason `dropped`). */
export interface Trade {
  /** Always `"trade"`. */
  type: "trade";
  /** The topic, `<channel>.<symbol>` (e.g. `trade.BTC-USD`). */
  topic: string;
  /** Per-topic sequence number; consecutive unless a `gap` event announced the missing ones. */
  seq: number;
  /** Execution time, unix microseconds. */
  ts: number;
  /** Exact decimal strings, as the feed wrote them. */
  price: string;
  /** Traded quantity, an exact decimal string as the feed wrote it. */
  size: string;
  /** The taker's side. */
  side: "buy" | "sell";
  /** The venue's id, or tickcast's seq when the feed gave none. */
  trade_id: string;
}

/** One candle on `bar.<interval>.<SYM>`: `closed:false` updates replace the bar with the same `start`. */
export interface Bar {
  /** Always `"bar"`. */
  type: "bar";
  /** The topic, `<channel>.<symbol>` (e.g. `bar.1m.AAPL`). */
  topic: string;
  /** Per-topic sequence number (every update of a bar takes the next one); consecutive unless a `gap` event announced the missing ones. */
  seq: number;
  /** Interval start, unix microseconds. */
  start: number;
  /** Price of the interval's first trade, an exact decimal string. */
  open: string;
  /** Highest trade price in the interval so far, an exact decimal string. */
  high: string;
  /** Lowest trade price in the interval so far, an exact decimal string. */
  low: string;
  /** Price of the latest trade in the interval (final once `closed`), an exact decimal string. */
  close: string;
  /** Sum of the trades' sizes, an exact decimal string. */
  volume: string;
  /** Volume-weighted average price, an exact decimal string rounded half away from zero to the finest price scale seen in the bar. */
  vwap: string;
  /** Trades in the bar. */
  trades: number;
  /** false while the interval is open (the bar is re-sent as it changes); true once final. */
  closed: boolean;
}

/** The topic's seq space started over upstream with this epoch (protocol v2 `reset`). */
export interface ResetEvent {
  /** The topic whose seq space restarted. */
  topic: string;
  /** The new epoch (at most 16 characters); later seqs and `since` resumes belong to it. */
  epoch: string;
}

/** Seqs from..=to of topic will not arrive; `unannounced` when no server marker named them (a server bug). */
export interface GapEvent {
  /** The topic that skips seqs. */
  topic: string;
  /** First missing seq (inclusive). */
  from: number;
  /** Last missing seq (inclusive). */
  to: number;
  /**
   * conflated, dropped (the client was behind), upstream (the feed lost them), resync (books: a fresh snapshot
   * follows), or unannounced (a seq jump with no server marker); other strings may come from newer servers.
   */
  reason: "conflated" | "dropped" | "upstream" | "unannounced" | string;
}

/** The topic had no tick for heartbeat_ms; seq/ts are its last tick's. */
export interface HeartbeatEvent {
  /** The quiet topic. */
  topic: string;
  /** The topic's last seq (0 before its first tick). */
  seq: number;
  /** That tick's ingest time, unix microseconds (0 before its first tick). */
  ts: number;
  /** false once the feed that published the topic disconnected or stopped (or none has published it yet). */
  feed_up: boolean;
}

/** Outcome of a resubscribe with `since` after a reconnect. */
export interface RecoveryEvent {
  /** The resubscribed topic. */
  topic: string;
  /** true: exactly the missed messages follow; false: the latest tick follows as a snapshot, then live ones. */
  recovered: boolean;
  /**
   * too_old, epoch_changed or no_history when not recovered; for a topic a wildcard brought also unknown_epoch (it
   * started after the pattern's ack and the connection went before its epoch was learnt), and no_history when the
   * server no longer has it (after a restart: it starts over with its first tick).
   */
  reason?: string;
}

/** A heartbeat said feed_up:false: the feed that published topic is gone. */
export interface StaleEvent {
  /** The topic whose feed is gone. */
  topic: string;
  /** The topic's last seq, as the heartbeat reported it (0 if it never had a tick). */
  lastSeq: number;
}

/**
 * Connection state changes; `code`/`reason` are the close frame's (or the failure's) when disconnected, and
 * `retryInMs`/`nextAttemptAt` when the next attempt is scheduled (absent when none will follow: closed or refused).
 */
export interface StateEvent {
  /** The new state. */
  state: "connecting" | "connected" | "disconnected";
  /** The WebSocket close code (e.g. 1006, 1008) when a close ended the connection; absent otherwise. */
  code?: number;
  /** The close frame's reason or the failure in words (e.g. "client closed") when disconnected; absent otherwise. */
  reason?: string;
  /** The backoff wait before the next connect attempt, in ms. */
  retryInMs?: number;
  /** When the next attempt starts, `Date.now()` time (ms); `reconnectNow()` starts it sooner. */
  nextAttemptAt?: number;
}

/** A frame the server sent that the client could not use (binary, not JSON, or not a message), with the count. */
export interface InvalidFrameEvent extends InvalidFrame {
  /** Invalid frames this client received so far ({@link TickcastClient.invalidFrames}). */
  total: number;
}

/** A server `error` that answers no request of this client's (e.g. to malformed input, or a rate limit). */
export interface ServerErrorEvent {
  /** The error code, e.g. `invalid_field`, `rate_limited` (docs/protocol.md lists them). */
  code: string;
  /** What went wrong, in plain words. */
  message: string;
  /** The request field at fault, with `invalid_field`; absent otherwise. */
  field?: string;
  /** The `id` of the request it answers, when the server could read one. */
  id?: unknown;
}

/** Events a client emits, by name. */
export interface ClientEvents {
  /** The connection state changed. */
  state: StateEvent;
  /** A tick (live, a snapshot, or replayed by a recovery). */
  tick: Tick;
  /** Seqs of a topic that will not arrive (a server marker, or an unannounced jump). */
  gap: GapEvent;
  /** A quiet topic's heartbeat (with `heartbeatMs`). */
  heartbeat: HeartbeatEvent;
  /** Whether a resubscribe with `since` after a reconnect got back what was missed. */
  recovery: RecoveryEvent;
  /** A topic's feed went away (a heartbeat with `feed_up: false`). */
  stale: StaleEvent;
  /** A trade on a `trade.<SYM>` topic. */
  trade: Trade;
  /** A candle update on a `bar.<interval>.<SYM>` topic. */
  bar: Bar;
  /** Every `book` message as it came (a {@link TickcastClient.book} subscription keeps the book itself). */
  book: BookMessage;
  /** A topic's seq space started over with a new epoch. */
  reset: ResetEvent;
  /** Every message the server sent, parsed, before the client handles it (counts, diagnostics, unknown types). */
  message: Record<string, any>;
  /**
   * A refused credential stopped the client for good (a {@link TickcastError} `unauthorized`: see
   * {@link ClientOptions.token}; `connect()` rejects too), or an `error` reply no pending request was waiting for
   * (a request's own error rejects its promise instead).
   */
  error: TickcastError | ServerErrorEvent;
  /** A new clock offset estimate (with `clockSyncMs`): the min-round-trip sample of the last 8 pings. */
  clock: ClockSample;
  /** A frame that is not a JSON message (binary, unparsable): skipped, counted and told. */
  invalidFrame: InvalidFrameEvent;
}

/** A token, or a (sync or async) function called before every (re)connect that returns one. */
export type TokenSource = string | (() => string | Promise<string>);

/** Client options. */
export interface ClientOptions {
  /**
   * API key or JWT: `Authorization: Bearer` in Node, the `bearer.<token>` subprotocol in browsers (over SSE with the
   * browser's EventSource, the `token` query parameter). A refused credential (HTTP 401, 403 for the Origin, or a
   * close with 1008 "token expired") stops the client: `connect()` rejects with a {@link TickcastError} `unauthorized`
   * and an `error` event says so; no reconnect follows. With a function the client first reconnects once with a
   * fresh token from it, and stops only if that one is refused too.
   */
  token?: TokenSource;
  /**
   * "websocket", "sse" (the server's `GET /sse` Server-Sent Events stream), or "auto" (default): WebSocket, and SSE
   * once `sseFallbackAfter` WebSocket attempts in a row failed while the server answered HTTP (a proxy that refuses
   * upgrades); the client then stays on SSE until closed.
   */
  transport?: "auto" | "websocket" | "sse";
  /** Failed WebSocket attempts before "auto" switches to SSE (default 3). */
  sseFallbackAfter?: number;
  /** The SSE endpoint (default: `url` with http(s) for ws(s) and `/sse` for its last `/ws`). */
  sseUrl?: string;
  /** An EventSource constructor to use instead of the global one; with neither, a fetch() reader reads the stream. */
  EventSource?: unknown;
  /** Backoff floor in ms (default 100). */
  reconnectMinMs?: number;
  /** Backoff ceiling in ms (default 10000). */
  reconnectMaxMs?: number;
  /** heartbeat_ms for every subscribe that does not set one. */
  heartbeatMs?: number;
  /** How long a request waits for its reply (default 10000 ms). */
  requestTimeoutMs?: number;
  /**
   * How long a connect attempt may take to open (WebSocket handshake, or an SSE stream's response) before it is
   * abandoned and retried with backoff (default 10000 ms): a hung attempt neither opens nor fails by itself.
   */
  connectTimeoutMs?: number;
  /** A WebSocket constructor to use instead of the global one or `ws`. */
  WebSocket?: unknown;
  /**
   * Ping every this many ms while connected (and once on connecting) to estimate the server's clock offset from the
   * pongs' `ts` ({@link TickcastClient.clockOffset}, `clock` events); a ping unanswered within `requestTimeoutMs`
   * means a dead link, which is dropped and reconnected. Off by default.
   */
  clockSyncMs?: number;
}

/** Subscribe options; `extra` fields are sent as they are (wildcards and other server options). */
export interface SubscribeOptions {
  /** Heartbeat each topic after this many ms without a tick (`heartbeat_ms`); defaults to the client's `heartbeatMs`. */
  heartbeatMs?: number;
  /** At most one tick (the latest) per topic per this many ms (`throttle_ms`); absent: every tick. */
  throttleMs?: number;
  /**
   * Resume these topics after the given positions, in this request only (e.g. to backfill from the server's history);
   * a topic the client already has a position for resumes from its own. Reconnects resume from what was received.
   */
  since?: Record<string, {
    /** The last seq the caller has of the topic; the stream resumes after it. */
    seq: number;
    /** The epoch that seq belongs to. */
    epoch: string;
  }>;
  /** More fields for the subscribe request, sent as they are. */
  extra?: Record<string, unknown>;
}

/** Why a {@link BookSubscription} dropped its book. */
export interface BookInvalidEvent {
  /** The book topic, `book.<SYM>`. */
  topic: string;
  /**
   * mismatch (checksum), jump (delta seq jump without a gap marker), malformed, gap (a server gap marker: the
   * server sends a snapshot next), reset (the seq space started over), stalled (a delta came while waiting for a
   * snapshot none announced).
   */
  reason: "mismatch" | "jump" | "malformed" | "gap" | "reset" | "stalled";
  /** In words, e.g. "checksum mismatch at seq 42: server 123, local 456". */
  detail: string;
  /** Seq of the message (or the gap's `to`) that dropped it. */
  seq: number;
  /** Whether the subscription resubscribes for a fresh snapshot (else the server sends one by itself). */
  resubscribe: boolean;
}

/** Options of {@link TickcastClient.book}. */
export interface BookOptions {
  /** Called after every message that left the book verified (checksum matched), with the book and the message. */
  onUpdate?: (book: OrderBook, msg: BookMessage) => void;
  /** Called when the book is dropped; the next snapshot makes it valid again (`onUpdate` then). */
  onInvalid?: (ev: BookInvalidEvent) => void;
  /** heartbeat_ms for the topic. */
  heartbeatMs?: number;
  /** Least time between two resubscribes for a fresh snapshot (default 1000 ms). */
  resubscribeMinMs?: number;
}

/**
 * A kept order book: `book` is valid (checksum verified) whenever `checksumOk`; on a checksum mismatch, a seq jump
 * or a malformed message it is dropped and the topic resubscribed for a fresh snapshot; on a gap marker it is
 * dropped until the snapshot the server sends next. Created by {@link TickcastClient.book}.
 */
export class BookSubscription {
  /** The book topic, `book.<SYM>`. */
  readonly topic: string;
  /** The book (the same object for the subscription's life; read it in `onUpdate` or any time). */
  readonly book: OrderBook;
  /** Resubscribes sent for a fresh snapshot. */
  resubscribes = 0;
  /** @internal a subscribe of ours is under way: deltas before its snapshot are expected to be ignored */
  inFlight = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastResubscribeAt = -Infinity;

  /** @internal */
  constructor(
    topic: string,
    private readonly options: BookOptions,
    private readonly fresh: () => Promise<void>,
    private readonly leave: () => Promise<unknown>,
  ) {
    this.topic = topic;
    this.book = new OrderBook(topic);
  }

  /** True while the book is held and its last checksum matched. */
  get checksumOk(): boolean {
    return this.book.valid;
  }

  /** Checksum mismatches so far. */
  get mismatches(): number {
    return this.book.mismatches;
  }

  /** Messages verified so far. */
  get verified(): number {
    return this.book.verified;
  }

  /** Unsubscribes; the book is no longer kept. */
  async close(): Promise<void> {
    this.stop();
    await this.leave();
  }

  /** Cancels a pending resubscribe timer (the client calls it). @internal */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** @internal one `book` message of the topic, in stream order */
  onMessage(msg: BookMessage): void {
    const out: BookOutcome = this.book.apply(msg);
    if (out === "ok") {
      this.options.onUpdate?.(this.book, msg);
    } else if (out === "ignored") {
      // A delta while no book is held and no snapshot is on its way: none will come by itself.
      if (!this.book.valid && !this.inFlight && !this.timer)
        this.dropped("stalled", "a delta came while waiting for a snapshot", msg.seq, true);
    } else {
      this.dropped(out, this.book.lastProblem, msg.seq, true);
    }
  }

  /** @internal a gap marker of the topic: the server follows it with a snapshot */
  onGap(from: number, to: number, reason: string): void {
    this.book.invalidate(`gap ${from}-${to} (${reason}): waiting for a snapshot`);
    this.dropped("gap", this.book.lastProblem, to, false);
  }

  /** @internal the seq space started over: start over with a fresh subscribe */
  onReset(epoch: string): void {
    this.book.invalidate(`seq space restarted (epoch ${epoch})`);
    this.dropped("reset", this.book.lastProblem, this.book.seq, true);
  }

  private dropped(reason: BookInvalidEvent["reason"], detail: string, seq: number, resubscribe: boolean): void {
    this.options.onInvalid?.({ topic: this.topic, reason, detail, seq, resubscribe });
    if (resubscribe) this.resubscribe();
  }

  private resubscribe(): void {
    if (this.inFlight || this.timer) return;
    const wait = this.lastResubscribeAt + (this.options.resubscribeMinMs ?? 1000) - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.book.valid) this.resubscribe();
      }, wait);
      return;
    }
    this.lastResubscribeAt = Date.now();
    this.resubscribes++;
    this.inFlight = true;
    this.fresh()
      .catch(() => {}) // the connection went away: the reconnect subscribes without since, so a snapshot comes
      .finally(() => (this.inFlight = false));
  }
}

/** Full-jitter exponential backoff: a uniform share (rnd in [0,1)) of min(max, min * 2^attempt). */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, rnd: number): number {
  return Math.max(0, rnd) * Math.min(maxMs, minMs * 2 ** Math.min(attempt, 32));
}

/** The seqs skipped between the last processed seq and this tick's when no marker named them, else null. */
export function unannouncedGap(lastSeq: number | undefined, seq: number): [number, number] | null {
  if (lastSeq === undefined || seq <= lastSeq + 1) return null;
  return [lastSeq + 1, seq - 1];
}

interface TopicState {
  epoch?: string;
  seq?: number;
  stale: boolean;
  opts: Record<string, unknown>;
  /** A topic a wildcard brought (the client did not name it): the pattern. */
  pattern?: string;
  /** A wildcard's topic the client subscribed by name to learn its epoch: the server keeps it until unsubscribed. */
  named?: boolean;
}

/** Topics grouped by the options they were subscribed with (one subscribe request each). */
function byOptions(topics: Iterable<readonly [string, TopicState]>): Map<Record<string, unknown>, string[]> {
  const groups = new Map<Record<string, unknown>, string[]>();
  for (const [t, st] of topics) {
    const g = groups.get(st.opts);
    if (g) g.push(t);
    else groups.set(st.opts, [t]);
  }
  return groups;
}

interface Pending {
  resolve: (msg: Record<string, any>) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A handler for one event type (see {@link TickcastClient.on}). */
export type Listener<T> = (ev: T) => void;
/** How long the client gathers wildcard topics of unknown epoch before it asks for their epochs in one subscribe. */
const LEARN_BATCH_MS = 50;
const isNode = typeof process !== "undefined" && !!(process as any).versions?.node;

/** A tickcast connection; see the package docs. */
export class TickcastClient {
  /** The WebSocket URL given to the constructor (e.g. `ws://127.0.0.1:8080/ws`). */
  readonly url: string;
  /** The current connection state. */
  state: StateEvent["state"] = "disconnected";
  /** Frames received that were not JSON messages (binary, unparsable): see the `invalidFrame` event. */
  invalidFrames = 0;
  private opts: Required<Omit<ClientOptions, "token" | "WebSocket" | "heartbeatMs" | "clockSyncMs" | "sseUrl" | "EventSource">> & ClientOptions;
  private ws: any = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  /** What the app subscribed: named topics and wildcard patterns. */
  private topics = new Map<string, TopicState>();
  /** Topics the patterns brought that the app did not name, with their seq and epoch. */
  private matched = new Map<string, TopicState>();
  /** Matched topics whose epoch is unknown (they started after the pattern's ack): asked for in one subscribe. */
  private learning = new Set<string>();
  private books = new Map<string, BookSubscription>();
  private listeners = new Map<string, Set<Listener<any>>>();
  private closed = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private openWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private mode: "websocket" | "sse";
  /** WebSocket attempts in a row that failed while the server answered HTTP (auto mode counts them to SSE). */
  private wsFailures = 0;
  /** A refused credential was retried once with a fresh token since the last connection. */
  private authRetried = false;
  private sse: SseStream | null = null;
  private sseToken: string | undefined;
  /** Subscribes and unsubscribes over SSE, answered by the `subscribed` of the stream they reopened. */
  private sseWaiters: Pending[] = [];
  /** The stream was reopened for a topic change, not after a cut: its recovered topics are not news. */
  private sseQuiet = false;

  private clockSync: ClockSync | null = null;
  private clock: ClockSample | null = null;

  constructor(url: string, options: ClientOptions = {}) {
    this.url = url;
    this.opts = {
      reconnectMinMs: 100, reconnectMaxMs: 10000, requestTimeoutMs: 10000, connectTimeoutMs: 10000, transport: "auto",
      sseFallbackAfter: 3, ...options,
    };
    this.mode = this.opts.transport === "sse" ? "sse" : "websocket";
    if (options.clockSyncMs)
      this.clockSync = new ClockSync(options.clockSyncMs, {
        ping: () => this.ping(),
        onSample: (best) => {
          this.clock = best;
          this.emit("clock", best);
        },
        onDead: () => this.dropConnection(),
        timedOut: (e) => e instanceof Error && e.message.startsWith("no reply to request"),
      });
  }

  /**
   * The server's clock minus this machine's (`offsetUs`, within ± `rttUs / 2`), from the quickest of the last 8
   * pings; null before the first pong with a `ts`, or without `clockSyncMs`. Kept across a reconnect until a new pong.
   */
  clockOffset(): ClockSample | null {
    return this.clock;
  }

  /**
   * The last seq received of a subscribed topic (named, or brought by a pattern) and the epoch it belongs to (what a
   * reconnect resumes from).
   */
  position(topic: string): {
    /** Last seq received; absent before the first one. */
    seq?: number;
    /** The epoch it belongs to; absent until the server named it. */
    epoch?: string;
  } | undefined {
    const st = this.topics.get(topic) ?? this.matched.get(topic);
    return st && { seq: st.seq, epoch: st.epoch };
  }

  /** The topics a wildcard pattern brought so far (that the app did not name itself), sorted. */
  matchedTopics(pattern: string): string[] {
    return [...this.matched].filter(([, st]) => st.pattern === pattern).map(([t]) => t).sort();
  }

  /**
   * A topic's state: named, or brought by a held pattern (a topic a pattern matches that the client has not seen
   * yet, with `adopt`, is taken in: it started after the pattern's ack).
   */
  private stateOf(topic: string, adopt: boolean): TopicState | undefined {
    const st = this.topics.get(topic) ?? this.matched.get(topic);
    if (st || !adopt) return st;
    const pattern = patternFor(this.topics.keys(), topic);
    if (pattern === undefined) return undefined;
    const fresh: TopicState = { stale: false, opts: this.topics.get(pattern)!.opts, pattern };
    this.matched.set(topic, fresh);
    return fresh;
  }

  /** Connects now if no socket is open or opening (skipping the backoff wait), e.g. when the browser comes online. */
  reconnectNow(): void {
    if (this.closed || this.ws || this.sse) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.attempt = 0;
    void this.open();
  }

  /** Sends text as it is, outside the protocol's bookkeeping (diagnostics: see how a server answers malformed
   *  input; its `error` comes as an `error` event). False when not connected. */
  sendRaw(text: string): boolean {
    if (!this.ws || this.state !== "connected") return false;
    this.ws.send(text);
    return true;
  }

  /** The transport in use (or being tried): "websocket", or "sse" once configured or fallen back to. */
  get transport(): "websocket" | "sse" {
    return this.mode;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(event: K, fn: Listener<ClientEvents[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  private emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) fn(value);
  }

  private setState(ev: StateEvent): void {
    this.state = ev.state;
    if (ev.state === "connected") this.clockSync?.start(); // (its first ping needs the state set)
    else this.clockSync?.stop();
    this.emit("state", ev);
  }

  /**
   * Opens the connection (and keeps reopening it until close()); resolves once connected. Rejects with a
   * {@link TickcastError} `unauthorized` when the server refuses the credential (see {@link ClientOptions.token}).
   */
  connect(): Promise<void> {
    if (this.closed) this.authRetried = false; // a new start: a provider gets its fresh-token retry again
    this.closed = false;
    if (this.state === "connected") return Promise.resolve();
    const opened = new Promise<void>((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    if (!this.ws && !this.sse && !this.timer && this.state !== "connecting") void this.open();
    return opened;
  }

  /** Closes for good; pending calls reject, and no event but the final `state` follows (not even of messages
   *  already received). */
  close(): void {
    this.closed = true;
    if (this.ws) this.ws.onmessage = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ws?.close(1000, "client closed");
    for (const b of this.books.values()) b.stop();
    this.failPending(new Error("client closed"));
    if (this.mode === "sse" && this.state !== "disconnected") {
      this.sse?.close();
      this.sse = null;
      this.setState({ state: "disconnected", reason: "client closed" });
    }
  }

  /** Drops the current connection as a network failure would (the client reconnects); for tests and demos. */
  dropConnection(): void {
    this.ws?.close(4000, "dropped by the client");
    const stream = this.sse;
    if (stream) {
      this.sse = null;
      stream.close();
      void this.sseEnded({ reason: "dropped by the client" }, "");
    }
  }

  private async webSocketClass(): Promise<any> {
    if (this.opts.WebSocket) return this.opts.WebSocket;
    if (typeof (globalThis as any).WebSocket === "function") return (globalThis as any).WebSocket;
    const mod: any = await import("ws");
    return mod.default ?? mod.WebSocket;
  }

  private async open(): Promise<void> {
    this.setState({ state: "connecting" });
    let token: string | undefined;
    try {
      const t = this.opts.token;
      token = typeof t === "function" ? await t() : t;
    } catch (e) {
      this.retryLater({ state: "disconnected", reason: String(e) });
      return;
    }
    if (this.closed) return this.setState({ state: "disconnected", reason: "client closed" }); // closed meanwhile
    if (this.mode === "sse") this.openSse(token);
    else await this.openWs(token);
  }

  private async openWs(token: string | undefined): Promise<void> {
    let ws: any;
    let WS: any;
    try {
      WS = await this.webSocketClass();
    } catch (e) {
      // No WebSocket in this runtime (Node 20 without the `ws` package): "auto" goes on over SSE at once.
      if (this.opts.transport === "auto") this.mode = "sse";
      this.retryLater({ state: "disconnected", reason: String(e) });
      return;
    }
    try {
      const nodeWs = isNode && WS !== (globalThis as any).WebSocket;
      if (token && nodeWs) ws = new WS(this.url, { headers: { Authorization: `Bearer ${token}` } });
      else if (token) ws = new WS(this.url, ["tickcast.v1", `bearer.${token}`]);
      else ws = new WS(this.url);
    } catch (e) {
      this.retryLater({ state: "disconnected", reason: String(e) });
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer"; // a binary frame's size is then known at once (a browser's default is a Blob)
    let failure = "";
    let opened = false;
    // A handshake can hang (a black-holed SYN, a proxy that never answers): neither open nor close would come.
    const ms = this.opts.connectTimeoutMs;
    const connectTimer = setTimeout(() => {
      if (opened || this.ws !== ws) return;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // `ws` reports the abandoned handshake as an error event; nothing is left to tell
      try {
        ws.close();
      } catch {
        // a runtime that refuses to close a connecting socket drops it anyway once unreferenced
      }
      this.retryLater({ state: "disconnected", reason: `connect timed out after ${ms} ms` });
    }, ms);
    ws.onopen = () => {
      clearTimeout(connectTimer);
      opened = true;
      this.wsFailures = 0;
      this.connected();
      void this.resubscribeAll();
    };
    ws.onmessage = (ev: { data: unknown }) => this.receive(ev.data);
    ws.onerror = (ev: any) => {
      failure = String(ev?.message ?? ev?.error ?? "error");
    };
    ws.onclose = (ev: { code: number; reason: string }) => {
      clearTimeout(connectTimer);
      this.ws = null;
      this.failPending(new Error("connection closed"));
      const down: StateEvent = { state: "disconnected", code: ev.code, reason: ev.reason || failure };
      if (!opened && !this.closed) void this.handshakeFailed(token, failure, down);
      else if (isAuthClose(ev.code, ev.reason) && !this.closed)
        this.refused(new TickcastError("unauthorized", ev.reason), down);
      else {
        this.retryLater(down);
      }
    };
  }

  /**
   * A WebSocket that never opened: refused (401/403: stop), blocked while the server answers HTTP (auto mode counts
   * it toward SSE), or the server is down. `ws` names the status in its error; browsers hide it, so the `/topics`
   * endpoint next to `/ws` is asked with the same credential (it also gives the refusal's reason).
   */
  private async handshakeFailed(token: string | undefined, failure: string, down: StateEvent): Promise<void> {
    const known = handshakeStatus(failure);
    const p = await probe(siblingUrl(this.url, "topics"), token);
    if (this.closed) return this.setState(down);
    const status = known ?? p?.status;
    const err = status === undefined ? undefined : refusal(status, p?.status === status ? p.body : "");
    if (err?.code === "unauthorized") return this.refused(err, down);
    if (status !== undefined && this.opts.transport === "auto" && ++this.wsFailures >= this.opts.sseFallbackAfter) {
      this.mode = "sse";
      this.attempt = 0;
    }
    this.retryLater(down);
  }

  private connected(): void {
    this.attempt = 0;
    this.authRetried = false;
    this.setState({ state: "connected" });
    for (const w of this.openWaiters.splice(0)) w.resolve();
  }

  /** A refused credential: once more with a fresh token from a provider, else stop and tell. */
  private refused(err: TickcastError, down: StateEvent): void {
    if (typeof this.opts.token === "function" && !this.authRetried) {
      this.authRetried = true;
      this.retryLater(down);
      return;
    }
    this.closed = true; // connect() starts over
    for (const b of this.books.values()) b.stop();
    this.failPending(err);
    this.setState({ ...down, reason: err.message });
    for (const w of this.openWaiters.splice(0)) w.reject(err);
    this.emit("error", err);
  }

  private receive(data: unknown): void {
    const frame = parseFrame(data);
    if ("invalid" in frame) {
      this.emit("invalidFrame", { ...frame.invalid, total: ++this.invalidFrames });
      return;
    }
    this.emit("message", frame.msg);
    this.handle(frame.msg);
  }

  /** Disconnected: the next attempt is scheduled after the backoff wait, and the state event says when. */
  private retryLater(down: StateEvent): void {
    if (this.closed) return this.setState(down);
    const delay = backoffDelay(this.attempt++, this.opts.reconnectMinMs, this.opts.reconnectMaxMs, Math.random());
    // The timer is set before the event: a listener's reconnectNow() replaces it instead of opening twice.
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.open();
    }, delay);
    this.setState({ ...down, retryInMs: Math.round(delay), nextAttemptAt: Date.now() + Math.round(delay) });
  }

  private failPending(err: Error): void {
    for (const p of [...this.pending.values(), ...this.sseWaiters.splice(0)]) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  // --- SSE: one stream per topic set, reopened (resuming) on every subscribe and unsubscribe ---

  private openSse(token: string | undefined): void {
    this.sseToken = token;
    this.sseQuiet = false;
    // A stream needs topics: with none the client is ready, and the first subscribe opens it.
    if (this.topics.size === 0) this.connected();
    else this.startStream();
  }

  /**
   * The stream's topic set: what the app subscribed, then the topics its patterns brought, named so that the event
   * id resumes them too (the server leaves wildcard topics out of it). One whose epoch is still unknown (it started
   * after the last ack) cannot resume: it starts over from its snapshot.
   */
  private sseTopics(): SseTopic[] {
    for (const [topic, st] of this.matched) if (st.epoch === undefined) this.unresumable(topic, st);
    return [...this.topics, ...this.matched].map(([topic, st]) => ({
      topic,
      throttleMs: st.opts.throttle_ms as number | undefined,
      seq: this.resumable(topic, st) ? st.seq : undefined,
      epoch: st.epoch,
    }));
  }

  /** (Re)opens the stream for the current topic set, resuming each topic from what was processed. */
  private startStream(): void {
    this.sse?.close();
    const topics = this.sseTopics();
    const hbs = [...this.topics.values()].map((st) => st.opts.heartbeat_ms).filter((h): h is number => typeof h === "number");
    const ES = this.opts.EventSource ?? (globalThis as any).EventSource;
    const base = this.opts.sseUrl ?? siblingUrl(this.url, "sse");
    // EventSource cannot send headers: its token goes in the query, as the server allows.
    const url = sseStreamUrl(base, topics, hbs.length ? Math.min(...hbs) : undefined, ES ? this.sseToken : undefined);
    const ms = this.opts.connectTimeoutMs;
    const connectTimer = setTimeout(() => {
      if (this.sse !== stream) return;
      this.sse = null;
      stream.close();
      void this.sseEnded({ reason: `connect timed out after ${ms} ms` }, url);
    }, ms);
    const stream: SseStream = openSse(url, sseResumeId(topics), this.sseToken, ES, {
      onOpen: () => {
        clearTimeout(connectTimer);
        if (this.state !== "connected") this.connected();
      },
      onMessage: (data) => this.receive(data),
      onEnd: (end) => {
        clearTimeout(connectTimer);
        if (this.sse !== stream) return;
        this.sse = null;
        void this.sseEnded(end, url);
      },
    });
    this.sse = stream;
  }

  /** A stream that ended: a refused query rejects the change that caused it, a refused credential stops, a cut
   *  reconnects. EventSource hides the status: the same URL is asked again with fetch. */
  private async sseEnded(end: SseEnd, url: string): Promise<void> {
    let err = end.status !== undefined ? refusal(end.status, end.body ?? "") : undefined;
    if (end.refused) {
      const p = await probe(url, undefined);
      if (p) err = refusal(p.status, p.body);
    }
    if (this.closed) return;
    const down: StateEvent = { state: "disconnected", code: end.status, reason: end.reason ?? err?.message ?? `HTTP ${end.status}` };
    if (err?.code === "unauthorized") return this.refused(err, down);
    if (err && this.sseWaiters.length) {
      for (const p of this.sseWaiters.splice(0)) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      return; // the subscribe that caused it restores the previous topic set
    }
    this.failPending(new Error("connection closed"));
    this.retryLater(down);
  }

  /** Reopens the stream with the current topics; resolves with its `subscribed`. */
  private sseReopen(): Promise<Record<string, any>> {
    if (this.state !== "connected") return Promise.reject(new Error("not connected"));
    this.sseQuiet = true;
    if (this.topics.size === 0) {
      this.sse?.close();
      this.sse = null;
      return Promise.resolve({ type: "subscribed", topics: [] });
    }
    return new Promise((resolve, reject) => {
      const p: Pending = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.sseWaiters = this.sseWaiters.filter((w) => w !== p);
          reject(new Error("no reply from the event stream"));
        }, this.opts.requestTimeoutMs),
      };
      this.sseWaiters.push(p);
      this.startStream();
    });
  }

  private request(msg: Record<string, unknown>): Promise<Record<string, any>> {
    return new Promise((resolve, reject) => {
      this.send(msg, reject, (reply, id) => {
        if (reply.type === "error") reject(new TickcastError(reply.code, reply.message, reply.field, id));
        else resolve(reply);
        return true;
      });
    });
  }

  /**
   * Sends `msg` with the next id; `onReply` sees each reply with that id until it returns true (answered); `fail`
   * gets a timeout or a lost connection. Returns the id.
   */
  private send(msg: Record<string, unknown>, fail: (e: Error) => void, onReply: (reply: Record<string, any>, id: number) => boolean): number {
    const id = this.nextId++;
    if (!this.ws || this.state !== "connected") {
      fail(new Error("not connected"));
      return id;
    }
    const entry: Pending = {
      reject: fail,
      resolve: (reply) => {
        if (!onReply(reply, id)) this.pending.set(id, entry); // more to come (its timeout is the caller's then)
      },
      timer: setTimeout(() => {
        this.pending.delete(id);
        fail(new Error(`no reply to request ${id}`));
      }, this.opts.requestTimeoutMs),
    };
    this.pending.set(id, entry);
    this.ws.send(JSON.stringify({ ...msg, id }));
    return id;
  }

  /**
   * Sends a subscribe: its `subscribed`, and the `forbidden` error when the server refused some topics. The server
   * answers a partly refused request with `forbidden` and then a `subscribed` for the rest (same id), or with the
   * error alone when it subscribed nothing; replies leave in request order, so the pong of a ping sent after the
   * error comes after anything else the subscribe gets, and tells the two apart.
   */
  private subscribeRequest(msg: Record<string, unknown>): Promise<{ ack?: Record<string, any>; forbidden?: TickcastError }> {
    return new Promise((resolve, reject) => {
      let forbidden: TickcastError | undefined;
      const id = this.send(msg, reject, (reply) => {
        if (reply.type === "subscribed") {
          resolve({ ack: reply, forbidden });
          return true;
        }
        const err = new TickcastError(reply.code, reply.message, reply.field, id);
        if (reply.code !== "forbidden" || forbidden) {
          reject(err); // a refusal of the whole request (e.g. too_many_topics after the forbidden ones)
          return true;
        }
        forbidden = err;
        this.request({ op: "ping" }).then(() => {
          if (!this.pending.delete(id)) return;
          resolve({ forbidden });
        }, reject);
        return false;
      });
    });
  }

  /** Whether a topic resumes after its seq: a book not held (or not verified) gains nothing from the deltas after
   *  it and takes the snapshot. */
  private resumable(topic: string, st: TopicState): boolean {
    return !(this.books.has(topic) && !this.books.get(topic)!.book.valid);
  }

  private subscribeMsg(topics: string[], opts: Record<string, unknown>): Record<string, unknown> {
    const since: Record<string, { seq: number; epoch: string }> = {};
    for (const t of topics) {
      const st = this.topics.get(t);
      if (st && !this.resumable(t, st)) continue;
      if (st?.seq !== undefined && st.epoch !== undefined) since[t] = { seq: st.seq, epoch: st.epoch };
    }
    const msg: Record<string, unknown> = { op: "subscribe", topics, ...opts };
    if (Object.keys(since).length) msg.since = since;
    return msg;
  }

  /**
   * Subscribes; resolves with the `subscribed` ack, rejects with a TickcastError. Ticks come as `tick` events. Over
   * SSE the stream is reopened with the new topic set (every topic resuming where it was) and the ack is the new
   * stream's; `heartbeatMs` applies to the whole stream (the shortest asked), `extra` is not sent.
   */
  async subscribe(topics: string[], options: SubscribeOptions = {}): Promise<Record<string, any>> {
    const opts: Record<string, unknown> = { ...options.extra };
    const hb = options.heartbeatMs ?? this.opts.heartbeatMs;
    if (hb !== undefined) opts.heartbeat_ms = hb;
    if (options.throttleMs !== undefined) opts.throttle_ms = options.throttleMs;
    const fresh = topics.filter((t) => !this.topics.has(t));
    for (const t of fresh) {
      // A topic a pattern brought, now named: it goes on from its position (and no longer ends with the pattern).
      const had = this.matched.get(t);
      this.matched.delete(t);
      this.topics.set(t, { stale: had?.stale ?? false, seq: had?.seq, epoch: had?.epoch, opts });
    }
    const msg = this.subscribeMsg(topics, opts);
    if (options.since) msg.since = { ...options.since, ...(msg.since as object | undefined) };
    try {
      if (this.mode === "sse") return await this.sseReopen();
      const { ack, forbidden } = await this.subscribeRequest(msg);
      if (!forbidden) return ack!;
      // The server subscribed the rest: keep it, forget only what it refused, and name that in the error.
      const refused = refusedTopics(topics, ack);
      for (const t of refused) if (fresh.includes(t)) this.topics.delete(t);
      throw TickcastError.withTopics(forbidden, refused, ack);
    } catch (e) {
      if (e instanceof TickcastError && !e.topics) {
        for (const t of fresh) this.topics.delete(t);
        if (this.mode === "sse" && this.state === "connected") void this.sseReopen().catch(() => {});
      }
      throw e;
    }
  }

  /** Leaves topics; no tick of them follows the resolved promise. */
  async unsubscribe(topics: string[]): Promise<Record<string, any>> {
    const patterns = topics.filter(isPattern);
    const kept = [...this.topics.keys()].filter((e) => isPattern(e) && !patterns.includes(e));
    const brought = [...this.matched].filter(([, st]) => patterns.includes(st.pattern!));
    // Topics the client named to learn their epoch stay on the server until named in an unsubscribe too, unless
    // another pattern of the client matches them.
    const named = brought.filter(([t, st]) => st.named && !patternFor(kept, t)).map(([t]) => t);
    const forget = () => {
      for (const t of topics) {
        this.topics.delete(t);
        this.matched.delete(t); // a pattern's topic unsubscribed by name: the server ends it
        this.books.get(t)?.stop();
        this.books.delete(t);
      }
      for (const [t, st] of brought) {
        st.pattern = patternFor(kept, t); // still brought by another pattern, or gone with this one
        if (st.pattern === undefined) this.matched.delete(t);
      }
    };
    if (this.mode === "sse") {
      if (this.state !== "connected") throw new Error("not connected");
      forget(); // the old stream is closed before anything else is read
      await this.sseReopen();
      return { type: "unsubscribed", topics };
    }
    const reply = await this.request({ op: "unsubscribe", topics: [...topics, ...named] });
    forget();
    return reply;
  }

  /**
   * Subscribes to one `book.<SYM>` topic and keeps its order book: snapshot, deltas applied in seq order, levels
   * keyed by exact decimal value, each side trimmed to the snapshot's depth, the Kraken checksum verified after
   * every message. `onUpdate(book, msg)` follows every verified message. On a checksum mismatch, a seq jump or a
   * malformed message the book is dropped and the topic resubscribed for a fresh snapshot; on a `gap` marker it
   * is dropped until the snapshot the server sends next (`onInvalid` says so each time). After a reconnect a held
   * book resumes with `since`, else it takes a fresh snapshot. Resolves once subscribed; rejects with a
   * TickcastError (forbidden, invalid_topic, ...).
   */
  async book(topic: string, options: BookOptions = {}): Promise<BookSubscription> {
    if (this.books.has(topic)) throw new Error(`a book of ${topic} is already kept`);
    const sub = new BookSubscription(topic, options, () => this.freshSubscribe(topic), () => this.unsubscribe([topic]));
    // Subscribed already (by name or a pattern): only a new subscribe brings a snapshot.
    const held = this.topics.has(topic) || this.matched.has(topic);
    this.books.set(topic, sub);
    sub.inFlight = true;
    try {
      if (this.matched.has(topic)) await this.subscribe([topic], { heartbeatMs: options.heartbeatMs }); // named now
      if (held) await this.freshSubscribe(topic);
      else await this.subscribe([topic], { heartbeatMs: options.heartbeatMs });
    } catch (e) {
      sub.stop();
      this.books.delete(topic);
      throw e;
    } finally {
      sub.inFlight = false;
    }
    return sub;
  }

  /** Unsubscribes and subscribes again without `since`: the server sends the topic's snapshot. */
  private async freshSubscribe(topic: string): Promise<void> {
    const st = this.topics.get(topic);
    if (!st) return;
    if (this.mode === "sse") {
      st.seq = undefined; // resumes from 0 in the stream's id: the snapshot
      await this.sseReopen();
      return;
    }
    await this.request({ op: "unsubscribe", topics: [topic] });
    st.seq = undefined; // the snapshot is a fresh start, not a gap
    await this.request({ op: "subscribe", topics: [topic], ...st.opts });
  }

  /** Round trip; resolves with the pong. Over SSE (no requests) it rejects with a TickcastError `not_supported`. */
  ping(): Promise<Record<string, any>> {
    if (this.mode === "sse") return Promise.reject(new TickcastError("not_supported", "ping needs the WebSocket transport"));
    return this.request({ op: "ping" });
  }

  private async resubscribeAll(): Promise<void> {
    const groups = byOptions(this.topics);
    for (const st of this.matched.values()) st.named = false; // a new session: nothing is named for an epoch yet
    for (const [opts, topics] of groups) {
      for (let i = 0; i < topics.length; i += 100) {
        const chunk = topics.slice(i, i + 100);
        const msg = this.subscribeMsg(chunk, opts);
        const resumed = this.resumeMatched(chunk, msg);
        try {
          const { ack, forbidden } = await this.subscribeRequest(msg);
          if (ack) this.matchedGone(resumed, ack);
          if (forbidden) this.lostOnResubscribe(TickcastError.withTopics(forbidden, refusedTopics(chunk, ack), ack));
        } catch (e) {
          if (!(e instanceof TickcastError)) return; // the connection went away again: the next open resubscribes
          this.lostOnResubscribe(e);
        }
      }
    }
  }

  /**
   * The server refused topics the client held on a resubscribe (e.g. a renewed token with fewer grants): those it
   * names are forgotten (a refusal of a whole chunk, such as too_many_topics, keeps them for the next reconnect),
   * the app is told with an `error` event, and the other chunks go on.
   */
  private lostOnResubscribe(err: TickcastError): void {
    for (const t of err.topics ?? []) {
      this.topics.delete(t);
      this.books.get(t)?.stop();
      this.books.delete(t);
    }
    this.emit("error", err);
  }

  /**
   * Names in `msg.since` the topics the patterns among `entries` brought, as the server lets a resumed wildcard do;
   * one whose epoch the client never learned cannot resume: it starts over from its snapshot, and says so.
   */
  private resumeMatched(entries: string[], msg: Record<string, unknown>): string[] {
    const since: Record<string, { seq: number; epoch: string }> = { ...(msg.since as object | undefined) };
    const resumed: string[] = [];
    for (const [topic, st] of this.matched) {
      if (!entries.includes(st.pattern!) || st.seq === undefined) continue;
      if (st.epoch === undefined) this.unresumable(topic, st);
      else if (this.resumable(topic, st)) {
        since[topic] = { seq: st.seq, epoch: st.epoch };
        resumed.push(topic);
      }
    }
    if (resumed.length) msg.since = since;
    return resumed;
  }

  /** A wildcard topic whose epoch the client never learnt cannot resume: it starts over from its snapshot. */
  private unresumable(topic: string, st: TopicState): void {
    if (st.seq === undefined) return;
    st.seq = undefined;
    this.emit("recovery", { topic, recovered: false, reason: "unknown_epoch" });
  }

  /** Resumed wildcard topics the server no longer has (after a restart, before a feed publishes them again): the
   *  ack names neither their epoch nor an outcome; they start over with their first tick. */
  private matchedGone(resumed: string[], ack: Record<string, any>): void {
    for (const topic of resumed) {
      const st = this.matched.get(topic);
      if (!st || ack.epochs?.[topic] !== undefined || ack.recovery?.[topic] !== undefined) continue;
      st.seq = undefined;
      st.epoch = undefined;
      this.emit("recovery", { topic, recovered: false, reason: "no_history" });
    }
  }

  private handle(msg: any): void {
    switch (msg.type) {
      case "tick":
      case "trade":
      case "bar":
      case "book": {
        const st = this.stateOf(msg.topic, true);
        if (!st) return;
        if (st.pattern !== undefined && st.epoch === undefined && !st.named) this.learnEpoch(msg.topic, st);
        const gap = unannouncedGap(st.seq, msg.seq);
        if (gap) this.emit("gap", { topic: msg.topic, from: gap[0], to: gap[1], reason: "unannounced" });
        st.seq = msg.seq;
        st.stale = false;
        if (msg.type === "book") this.books.get(msg.topic)?.onMessage(msg as BookMessage);
        this.emit(msg.type as "tick" | "trade" | "bar" | "book", msg);
        return;
      }
      case "gap": {
        const st = this.stateOf(msg.topic, true);
        if (!st) return;
        this.emit("gap", { topic: msg.topic, from: msg.from, to: msg.to, reason: msg.reason });
        st.seq = msg.to;
        this.books.get(msg.topic)?.onGap(msg.from, msg.to, msg.reason);
        return;
      }
      case "reset": {
        const st = this.stateOf(msg.topic, true);
        if (!st) return;
        st.epoch = msg.epoch;
        st.seq = undefined; // the new seq space's first tick is a fresh start
        this.emit("reset", { topic: msg.topic, epoch: msg.epoch });
        this.books.get(msg.topic)?.onReset(msg.epoch);
        return;
      }
      case "heartbeat": {
        const st = this.stateOf(msg.topic, true);
        if (!st) return;
        this.emit("heartbeat", { topic: msg.topic, seq: msg.seq, ts: msg.ts, feed_up: msg.feed_up });
        if (!msg.feed_up && !st.stale) {
          st.stale = true;
          this.emit("stale", { topic: msg.topic, lastSeq: msg.seq });
        } else if (msg.feed_up) st.stale = false;
        return;
      }
      case "subscribed": {
        const recovery = msg.recovery ?? {};
        for (const [topic, epoch] of Object.entries<string>(msg.epochs ?? {})) {
          const st = this.stateOf(topic, true); // with a pattern: the topics it matched so far
          if (!st) continue;
          const rec = recovery[topic];
          if (rec) {
            if (!rec.recovered) st.seq = undefined; // the snapshot that follows is a fresh start, not a gap
            // An SSE stream reopened for a topic change resumes every other topic: only a loss is news there.
            if (!rec.recovered || !this.sseQuiet)
              this.emit("recovery", rec.recovered ? { topic, recovered: true } : { topic, recovered: false, reason: rec.reason });
          } else if (st.epoch !== undefined && st.epoch !== epoch) st.seq = undefined; // (unknown: learnt now)
          st.epoch = epoch;
        }
        this.resolve(msg);
        return;
      }
      case "unsubscribed":
      case "pong":
      case "error":
        this.resolve(msg);
        return;
    }
  }

  /**
   * A topic a pattern brought after the pattern's ack: no message names its epoch, which a resume needs. Subscribing
   * it by name does (the ack's `epochs`; no snapshot for a topic already streaming): one subscribe for every such
   * topic of a burst. The server then holds it as named, so the pattern's unsubscribe names it too.
   */
  private learnEpoch(topic: string, st: TopicState): void {
    if (this.mode !== "websocket") return; // an SSE stream's next ack names it (the stream names every topic)
    st.named = true;
    this.learning.add(topic);
    if (this.learning.size > 1) return;
    setTimeout(() => {
      const groups = byOptions([...this.learning].flatMap((t) => (this.matched.has(t) ? [[t, this.matched.get(t)!] as const] : [])));
      this.learning.clear();
      for (const [opts, topics] of groups) void this.request({ op: "subscribe", topics, ...opts }).catch(() => {});
    }, LEARN_BATCH_MS);
  }

  private resolve(msg: any): void {
    if (this.mode === "sse" && msg.type === "subscribed") {
      // An SSE ack answers every change since the stream was reopened (they are all in its topic set).
      for (const w of this.sseWaiters.splice(0)) {
        clearTimeout(w.timer);
        w.resolve(msg);
      }
      return;
    }
    const p = typeof msg.id === "number" ? this.pending.get(msg.id) : undefined;
    if (!p && msg.type === "error")
      this.emit("error", { code: msg.code, message: msg.message, field: msg.field, id: msg.id });
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    p.resolve(msg);
  }
}
