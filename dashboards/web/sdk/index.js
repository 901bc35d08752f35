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
import { OrderBook } from "./book.js";
import { ClockSync } from "./clocksync.js";
import { TickcastError, handshakeStatus, isAuthClose, refusal } from "./errors.js";
import { parseFrame } from "./frames.js";
import { openSse, probe, siblingUrl, sseResumeId, sseStreamUrl } from "./sse.js";
import { isPattern, patternFor, refusedTopics } from "./wildcard.js";
export { TickcastError } from "./errors.js";
export { parseFrame } from "./frames.js";
export { isPattern, matches, patternFor, refusedTopics } from "./wildcard.js";
export { OrderBook, CHECKSUM_LEVELS, MAX_SCALE, checksumDigits, crc32, decimalSub, parseDecimal, } from "./book.js";
export { ClockWindow, bestSample, clockSample, correctedLatency, localNowUs, } from "./clock.js";
/**
 * A kept order book: `book` is valid (checksum verified) whenever `checksumOk`; on a checksum mismatch, a seq jump
 * or a malformed message it is dropped and the topic resubscribed for a fresh snapshot; on a gap marker it is
 * dropped until the snapshot the server sends next. Created by {@link TickcastClient.book}.
 */
export class BookSubscription {
    /** @internal */
    constructor(topic, options, fresh, leave) {
        this.options = options;
        this.fresh = fresh;
        this.leave = leave;
        /** Resubscribes sent for a fresh snapshot. */
        this.resubscribes = 0;
        /** @internal a subscribe of ours is under way: deltas before its snapshot are expected to be ignored */
        this.inFlight = false;
        this.timer = null;
        this.lastResubscribeAt = -Infinity;
        this.topic = topic;
        this.book = new OrderBook(topic);
    }
    /** True while the book is held and its last checksum matched. */
    get checksumOk() {
        return this.book.valid;
    }
    /** Checksum mismatches so far. */
    get mismatches() {
        return this.book.mismatches;
    }
    /** Messages verified so far. */
    get verified() {
        return this.book.verified;
    }
    /** Unsubscribes; the book is no longer kept. */
    async close() {
        this.stop();
        await this.leave();
    }
    /** Cancels a pending resubscribe timer (the client calls it). @internal */
    stop() {
        if (this.timer)
            clearTimeout(this.timer);
        this.timer = null;
    }
    /** @internal one `book` message of the topic, in stream order */
    onMessage(msg) {
        const out = this.book.apply(msg);
        if (out === "ok") {
            this.options.onUpdate?.(this.book, msg);
        }
        else if (out === "ignored") {
            // A delta while no book is held and no snapshot is on its way: none will come by itself.
            if (!this.book.valid && !this.inFlight && !this.timer)
                this.dropped("stalled", "a delta came while waiting for a snapshot", msg.seq, true);
        }
        else {
            this.dropped(out, this.book.lastProblem, msg.seq, true);
        }
    }
    /** @internal a gap marker of the topic: the server follows it with a snapshot */
    onGap(from, to, reason) {
        this.book.invalidate(`gap ${from}-${to} (${reason}): waiting for a snapshot`);
        this.dropped("gap", this.book.lastProblem, to, false);
    }
    /** @internal the seq space started over: start over with a fresh subscribe */
    onReset(epoch) {
        this.book.invalidate(`seq space restarted (epoch ${epoch})`);
        this.dropped("reset", this.book.lastProblem, this.book.seq, true);
    }
    dropped(reason, detail, seq, resubscribe) {
        this.options.onInvalid?.({ topic: this.topic, reason, detail, seq, resubscribe });
        if (resubscribe)
            this.resubscribe();
    }
    resubscribe() {
        if (this.inFlight || this.timer)
            return;
        const wait = this.lastResubscribeAt + (this.options.resubscribeMinMs ?? 1000) - Date.now();
        if (wait > 0) {
            this.timer = setTimeout(() => {
                this.timer = null;
                if (!this.book.valid)
                    this.resubscribe();
            }, wait);
            return;
        }
        this.lastResubscribeAt = Date.now();
        this.resubscribes++;
        this.inFlight = true;
        this.fresh()
            .catch(() => { }) // the connection went away: the reconnect subscribes without since, so a snapshot comes
            .finally(() => (this.inFlight = false));
    }
}
/** Full-jitter exponential backoff: a uniform share (rnd in [0,1)) of min(max, min * 2^attempt). */
export function backoffDelay(attempt, minMs, maxMs, rnd) {
    return Math.max(0, rnd) * Math.min(maxMs, minMs * 2 ** Math.min(attempt, 32));
}
/** The seqs skipped between the last processed seq and this tick's when no marker named them, else null. */
export function unannouncedGap(lastSeq, seq) {
    if (lastSeq === undefined || seq <= lastSeq + 1)
        return null;
    return [lastSeq + 1, seq - 1];
}
/** Topics grouped by the options they were subscribed with (one subscribe request each). */
function byOptions(topics) {
    const groups = new Map();
    for (const [t, st] of topics) {
        const g = groups.get(st.opts);
        if (g)
            g.push(t);
        else
            groups.set(st.opts, [t]);
    }
    return groups;
}
/** How long the client gathers wildcard topics of unknown epoch before it asks for their epochs in one subscribe. */
const LEARN_BATCH_MS = 50;
const isNode = typeof process !== "undefined" && !!process.versions?.node;
/** A tickcast connection; see the package docs. */
export class TickcastClient {
    constructor(url, options = {}) {
        /** The current connection state. */
        this.state = "disconnected";
        /** Frames received that were not JSON messages (binary, unparsable): see the `invalidFrame` event. */
        this.invalidFrames = 0;
        this.ws = null;
        this.nextId = 1;
        this.pending = new Map();
        /** What the app subscribed: named topics and wildcard patterns. */
        this.topics = new Map();
        /** Topics the patterns brought that the app did not name, with their seq and epoch. */
        this.matched = new Map();
        /** Matched topics whose epoch is unknown (they started after the pattern's ack): asked for in one subscribe. */
        this.learning = new Set();
        this.books = new Map();
        this.listeners = new Map();
        this.closed = false;
        this.attempt = 0;
        this.timer = null;
        this.openWaiters = [];
        /** WebSocket attempts in a row that failed while the server answered HTTP (auto mode counts them to SSE). */
        this.wsFailures = 0;
        /** A refused credential was retried once with a fresh token since the last connection. */
        this.authRetried = false;
        this.sse = null;
        /** Subscribes and unsubscribes over SSE, answered by the `subscribed` of the stream they reopened. */
        this.sseWaiters = [];
        /** The stream was reopened for a topic change, not after a cut: its recovered topics are not news. */
        this.sseQuiet = false;
        this.clockSync = null;
        this.clock = null;
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
    clockOffset() {
        return this.clock;
    }
    /**
     * The last seq received of a subscribed topic (named, or brought by a pattern) and the epoch it belongs to (what a
     * reconnect resumes from).
     */
    position(topic) {
        const st = this.topics.get(topic) ?? this.matched.get(topic);
        return st && { seq: st.seq, epoch: st.epoch };
    }
    /** The topics a wildcard pattern brought so far (that the app did not name itself), sorted. */
    matchedTopics(pattern) {
        return [...this.matched].filter(([, st]) => st.pattern === pattern).map(([t]) => t).sort();
    }
    /**
     * A topic's state: named, or brought by a held pattern (a topic a pattern matches that the client has not seen
     * yet, with `adopt`, is taken in: it started after the pattern's ack).
     */
    stateOf(topic, adopt) {
        const st = this.topics.get(topic) ?? this.matched.get(topic);
        if (st || !adopt)
            return st;
        const pattern = patternFor(this.topics.keys(), topic);
        if (pattern === undefined)
            return undefined;
        const fresh = { stale: false, opts: this.topics.get(pattern).opts, pattern };
        this.matched.set(topic, fresh);
        return fresh;
    }
    /** Connects now if no socket is open or opening (skipping the backoff wait), e.g. when the browser comes online. */
    reconnectNow() {
        if (this.closed || this.ws || this.sse)
            return;
        if (this.timer)
            clearTimeout(this.timer);
        this.timer = null;
        this.attempt = 0;
        void this.open();
    }
    /** Sends text as it is, outside the protocol's bookkeeping (diagnostics: see how a server answers malformed
     *  input; its `error` comes as an `error` event). False when not connected. */
    sendRaw(text) {
        if (!this.ws || this.state !== "connected")
            return false;
        this.ws.send(text);
        return true;
    }
    /** The transport in use (or being tried): "websocket", or "sse" once configured or fallen back to. */
    get transport() {
        return this.mode;
    }
    /** Adds a listener; returns a function that removes it. */
    on(event, fn) {
        let set = this.listeners.get(event);
        if (!set)
            this.listeners.set(event, (set = new Set()));
        set.add(fn);
        return () => set.delete(fn);
    }
    emit(event, value) {
        for (const fn of this.listeners.get(event) ?? [])
            fn(value);
    }
    setState(ev) {
        this.state = ev.state;
        if (ev.state === "connected")
            this.clockSync?.start(); // (its first ping needs the state set)
        else
            this.clockSync?.stop();
        this.emit("state", ev);
    }
    /**
     * Opens the connection (and keeps reopening it until close()); resolves once connected. Rejects with a
     * {@link TickcastError} `unauthorized` when the server refuses the credential (see {@link ClientOptions.token}).
     */
    connect() {
        if (this.closed)
            this.authRetried = false; // a new start: a provider gets its fresh-token retry again
        this.closed = false;
        if (this.state === "connected")
            return Promise.resolve();
        const opened = new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
        if (!this.ws && !this.sse && !this.timer && this.state !== "connecting")
            void this.open();
        return opened;
    }
    /** Closes for good; pending calls reject, and no event but the final `state` follows (not even of messages
     *  already received). */
    close() {
        this.closed = true;
        if (this.ws)
            this.ws.onmessage = null;
        if (this.timer)
            clearTimeout(this.timer);
        this.timer = null;
        this.ws?.close(1000, "client closed");
        for (const b of this.books.values())
            b.stop();
        this.failPending(new Error("client closed"));
        if (this.mode === "sse" && this.state !== "disconnected") {
            this.sse?.close();
            this.sse = null;
            this.setState({ state: "disconnected", reason: "client closed" });
        }
    }
    /** Drops the current connection as a network failure would (the client reconnects); for tests and demos. */
    dropConnection() {
        this.ws?.close(4000, "dropped by the client");
        const stream = this.sse;
        if (stream) {
            this.sse = null;
            stream.close();
            void this.sseEnded({ reason: "dropped by the client" }, "");
        }
    }
    async webSocketClass() {
        if (this.opts.WebSocket)
            return this.opts.WebSocket;
        if (typeof globalThis.WebSocket === "function")
            return globalThis.WebSocket;
        const mod = await import("ws");
        return mod.default ?? mod.WebSocket;
    }
    async open() {
        this.setState({ state: "connecting" });
        let token;
        try {
            const t = this.opts.token;
            token = typeof t === "function" ? await t() : t;
        }
        catch (e) {
            this.retryLater({ state: "disconnected", reason: String(e) });
            return;
        }
        if (this.closed)
            return this.setState({ state: "disconnected", reason: "client closed" }); // closed meanwhile
        if (this.mode === "sse")
            this.openSse(token);
        else
            await this.openWs(token);
    }
    async openWs(token) {
        let ws;
        let WS;
        try {
            WS = await this.webSocketClass();
        }
        catch (e) {
            // No WebSocket in this runtime (Node 20 without the `ws` package): "auto" goes on over SSE at once.
            if (this.opts.transport === "auto")
                this.mode = "sse";
            this.retryLater({ state: "disconnected", reason: String(e) });
            return;
        }
        try {
            const nodeWs = isNode && WS !== globalThis.WebSocket;
            if (token && nodeWs)
                ws = new WS(this.url, { headers: { Authorization: `Bearer ${token}` } });
            else if (token)
                ws = new WS(this.url, ["tickcast.v1", `bearer.${token}`]);
            else
                ws = new WS(this.url);
        }
        catch (e) {
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
            if (opened || this.ws !== ws)
                return;
            this.ws = null;
            ws.onopen = ws.onmessage = ws.onclose = null;
            ws.onerror = () => { }; // `ws` reports the abandoned handshake as an error event; nothing is left to tell
            try {
                ws.close();
            }
            catch {
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
        ws.onmessage = (ev) => this.receive(ev.data);
        ws.onerror = (ev) => {
            failure = String(ev?.message ?? ev?.error ?? "error");
        };
        ws.onclose = (ev) => {
            clearTimeout(connectTimer);
            this.ws = null;
            this.failPending(new Error("connection closed"));
            const down = { state: "disconnected", code: ev.code, reason: ev.reason || failure };
            if (!opened && !this.closed)
                void this.handshakeFailed(token, failure, down);
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
    async handshakeFailed(token, failure, down) {
        const known = handshakeStatus(failure);
        const p = await probe(siblingUrl(this.url, "topics"), token);
        if (this.closed)
            return this.setState(down);
        const status = known ?? p?.status;
        const err = status === undefined ? undefined : refusal(status, p?.status === status ? p.body : "");
        if (err?.code === "unauthorized")
            return this.refused(err, down);
        if (status !== undefined && this.opts.transport === "auto" && ++this.wsFailures >= this.opts.sseFallbackAfter) {
            this.mode = "sse";
            this.attempt = 0;
        }
        this.retryLater(down);
    }
    connected() {
        this.attempt = 0;
        this.authRetried = false;
        this.setState({ state: "connected" });
        for (const w of this.openWaiters.splice(0))
            w.resolve();
    }
    /** A refused credential: once more with a fresh token from a provider, else stop and tell. */
    refused(err, down) {
        if (typeof this.opts.token === "function" && !this.authRetried) {
            this.authRetried = true;
            this.retryLater(down);
            return;
        }
        this.closed = true; // connect() starts over
        for (const b of this.books.values())
            b.stop();
        this.failPending(err);
        this.setState({ ...down, reason: err.message });
        for (const w of this.openWaiters.splice(0))
            w.reject(err);
        this.emit("error", err);
    }
    receive(data) {
        const frame = parseFrame(data);
        if ("invalid" in frame) {
            this.emit("invalidFrame", { ...frame.invalid, total: ++this.invalidFrames });
            return;
        }
        this.emit("message", frame.msg);
        this.handle(frame.msg);
    }
    /** Disconnected: the next attempt is scheduled after the backoff wait, and the state event says when. */
    retryLater(down) {
        if (this.closed)
            return this.setState(down);
        const delay = backoffDelay(this.attempt++, this.opts.reconnectMinMs, this.opts.reconnectMaxMs, Math.random());
        // The timer is set before the event: a listener's reconnectNow() replaces it instead of opening twice.
        this.timer = setTimeout(() => {
            this.timer = null;
            void this.open();
        }, delay);
        this.setState({ ...down, retryInMs: Math.round(delay), nextAttemptAt: Date.now() + Math.round(delay) });
    }
    failPending(err) {
        for (const p of [...this.pending.values(), ...this.sseWaiters.splice(0)]) {
            clearTimeout(p.timer);
            p.reject(err);
        }
        this.pending.clear();
    }
    // --- SSE: one stream per topic set, reopened (resuming) on every subscribe and unsubscribe ---
    openSse(token) {
        this.sseToken = token;
        this.sseQuiet = false;
        // A stream needs topics: with none the client is ready, and the first subscribe opens it.
        if (this.topics.size === 0)
            this.connected();
        else
            this.startStream();
    }
    /**
     * The stream's topic set: what the app subscribed, then the topics its patterns brought, named so that the event
     * id resumes them too (the server leaves wildcard topics out of it). One whose epoch is still unknown (it started
     * after the last ack) cannot resume: it starts over from its snapshot.
     */
    sseTopics() {
        for (const [topic, st] of this.matched)
            if (st.epoch === undefined)
                this.unresumable(topic, st);
        return [...this.topics, ...this.matched].map(([topic, st]) => ({
            topic,
            throttleMs: st.opts.throttle_ms,
            seq: this.resumable(topic, st) ? st.seq : undefined,
            epoch: st.epoch,
        }));
    }
    /** (Re)opens the stream for the current topic set, resuming each topic from what was processed. */
    startStream() {
        this.sse?.close();
        const topics = this.sseTopics();
        const hbs = [...this.topics.values()].map((st) => st.opts.heartbeat_ms).filter((h) => typeof h === "number");
        const ES = this.opts.EventSource ?? globalThis.EventSource;
        const base = this.opts.sseUrl ?? siblingUrl(this.url, "sse");
        // EventSource cannot send headers: its token goes in the query, as the server allows.
        const url = sseStreamUrl(base, topics, hbs.length ? Math.min(...hbs) : undefined, ES ? this.sseToken : undefined);
        const ms = this.opts.connectTimeoutMs;
        const connectTimer = setTimeout(() => {
            if (this.sse !== stream)
                return;
            this.sse = null;
            stream.close();
            void this.sseEnded({ reason: `connect timed out after ${ms} ms` }, url);
        }, ms);
        const stream = openSse(url, sseResumeId(topics), this.sseToken, ES, {
            onOpen: () => {
                clearTimeout(connectTimer);
                if (this.state !== "connected")
                    this.connected();
            },
            onMessage: (data) => this.receive(data),
            onEnd: (end) => {
                clearTimeout(connectTimer);
                if (this.sse !== stream)
                    return;
                this.sse = null;
                void this.sseEnded(end, url);
            },
        });
        this.sse = stream;
    }
    /** A stream that ended: a refused query rejects the change that caused it, a refused credential stops, a cut
     *  reconnects. EventSource hides the status: the same URL is asked again with fetch. */
    async sseEnded(end, url) {
        let err = end.status !== undefined ? refusal(end.status, end.body ?? "") : undefined;
        if (end.refused) {
            const p = await probe(url, undefined);
            if (p)
                err = refusal(p.status, p.body);
        }
        if (this.closed)
            return;
        const down = { state: "disconnected", code: end.status, reason: end.reason ?? err?.message ?? `HTTP ${end.status}` };
        if (err?.code === "unauthorized")
            return this.refused(err, down);
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
    sseReopen() {
        if (this.state !== "connected")
            return Promise.reject(new Error("not connected"));
        this.sseQuiet = true;
        if (this.topics.size === 0) {
            this.sse?.close();
            this.sse = null;
            return Promise.resolve({ type: "subscribed", topics: [] });
        }
        return new Promise((resolve, reject) => {
            const p = {
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
    request(msg) {
        return new Promise((resolve, reject) => {
            this.send(msg, reject, (reply, id) => {
                if (reply.type === "error")
                    reject(new TickcastError(reply.code, reply.message, reply.field, id));
                else
                    resolve(reply);
                return true;
            });
        });
    }
    /**
     * Sends `msg` with the next id; `onReply` sees each reply with that id until it returns true (answered); `fail`
     * gets a timeout or a lost connection. Returns the id.
     */
    send(msg, fail, onReply) {
        const id = this.nextId++;
        if (!this.ws || this.state !== "connected") {
            fail(new Error("not connected"));
            return id;
        }
        const entry = {
            reject: fail,
            resolve: (reply) => {
                if (!onReply(reply, id))
                    this.pending.set(id, entry); // more to come (its timeout is the caller's then)
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
    subscribeRequest(msg) {
        return new Promise((resolve, reject) => {
            let forbidden;
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
                    if (!this.pending.delete(id))
                        return;
                    resolve({ forbidden });
                }, reject);
                return false;
            });
        });
    }
    /** Whether a topic resumes after its seq: a book not held (or not verified) gains nothing from the deltas after
     *  it and takes the snapshot. */
    resumable(topic, st) {
        return !(this.books.has(topic) && !this.books.get(topic).book.valid);
    }
    subscribeMsg(topics, opts) {
        const since = {};
        for (const t of topics) {
            const st = this.topics.get(t);
            if (st && !this.resumable(t, st))
                continue;
            if (st?.seq !== undefined && st.epoch !== undefined)
                since[t] = { seq: st.seq, epoch: st.epoch };
        }
        const msg = { op: "subscribe", topics, ...opts };
        if (Object.keys(since).length)
            msg.since = since;
        return msg;
    }
    /**
     * Subscribes; resolves with the `subscribed` ack, rejects with a TickcastError. Ticks come as `tick` events. Over
     * SSE the stream is reopened with the new topic set (every topic resuming where it was) and the ack is the new
     * stream's; `heartbeatMs` applies to the whole stream (the shortest asked), `extra` is not sent.
     */
    async subscribe(topics, options = {}) {
        const opts = { ...options.extra };
        const hb = options.heartbeatMs ?? this.opts.heartbeatMs;
        if (hb !== undefined)
            opts.heartbeat_ms = hb;
        if (options.throttleMs !== undefined)
            opts.throttle_ms = options.throttleMs;
        const fresh = topics.filter((t) => !this.topics.has(t));
        for (const t of fresh) {
            // A topic a pattern brought, now named: it goes on from its position (and no longer ends with the pattern).
            const had = this.matched.get(t);
            this.matched.delete(t);
            this.topics.set(t, { stale: had?.stale ?? false, seq: had?.seq, epoch: had?.epoch, opts });
        }
        const msg = this.subscribeMsg(topics, opts);
        if (options.since)
            msg.since = { ...options.since, ...msg.since };
        try {
            if (this.mode === "sse")
                return await this.sseReopen();
            const { ack, forbidden } = await this.subscribeRequest(msg);
            if (!forbidden)
                return ack;
            // The server subscribed the rest: keep it, forget only what it refused, and name that in the error.
            const refused = refusedTopics(topics, ack);
            for (const t of refused)
                if (fresh.includes(t))
                    this.topics.delete(t);
            throw TickcastError.withTopics(forbidden, refused, ack);
        }
        catch (e) {
            if (e instanceof TickcastError && !e.topics) {
                for (const t of fresh)
                    this.topics.delete(t);
                if (this.mode === "sse" && this.state === "connected")
                    void this.sseReopen().catch(() => { });
            }
            throw e;
        }
    }
    /** Leaves topics; no tick of them follows the resolved promise. */
    async unsubscribe(topics) {
        const patterns = topics.filter(isPattern);
        const kept = [...this.topics.keys()].filter((e) => isPattern(e) && !patterns.includes(e));
        const brought = [...this.matched].filter(([, st]) => patterns.includes(st.pattern));
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
                if (st.pattern === undefined)
                    this.matched.delete(t);
            }
        };
        if (this.mode === "sse") {
            if (this.state !== "connected")
                throw new Error("not connected");
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
    async book(topic, options = {}) {
        if (this.books.has(topic))
            throw new Error(`a book of ${topic} is already kept`);
        const sub = new BookSubscription(topic, options, () => this.freshSubscribe(topic), () => this.unsubscribe([topic]));
        // Subscribed already (by name or a pattern): only a new subscribe brings a snapshot.
        const held = this.topics.has(topic) || this.matched.has(topic);
        this.books.set(topic, sub);
        sub.inFlight = true;
        try {
            if (this.matched.has(topic))
                await this.subscribe([topic], { heartbeatMs: options.heartbeatMs }); // named now
            if (held)
                await this.freshSubscribe(topic);
            else
                await this.subscribe([topic], { heartbeatMs: options.heartbeatMs });
        }
        catch (e) {
            sub.stop();
            this.books.delete(topic);
            throw e;
        }
        finally {
            sub.inFlight = false;
        }
        return sub;
    }
    /** Unsubscribes and subscribes again without `since`: the server sends the topic's snapshot. */
    async freshSubscribe(topic) {
        const st = this.topics.get(topic);
        if (!st)
            return;
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
    ping() {
        if (this.mode === "sse")
            return Promise.reject(new TickcastError("not_supported", "ping needs the WebSocket transport"));
        return this.request({ op: "ping" });
    }
    async resubscribeAll() {
        const groups = byOptions(this.topics);
        for (const st of this.matched.values())
            st.named = false; // a new session: nothing is named for an epoch yet
        for (const [opts, topics] of groups) {
            for (let i = 0; i < topics.length; i += 100) {
                const chunk = topics.slice(i, i + 100);
                const msg = this.subscribeMsg(chunk, opts);
                const resumed = this.resumeMatched(chunk, msg);
                try {
                    const { ack, forbidden } = await this.subscribeRequest(msg);
                    if (ack)
                        this.matchedGone(resumed, ack);
                    if (forbidden)
                        this.lostOnResubscribe(TickcastError.withTopics(forbidden, refusedTopics(chunk, ack), ack));
                }
                catch (e) {
                    if (!(e instanceof TickcastError))
                        return; // the connection went away again: the next open resubscribes
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
    lostOnResubscribe(err) {
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
    resumeMatched(entries, msg) {
        const since = { ...msg.since };
        const resumed = [];
        for (const [topic, st] of this.matched) {
            if (!entries.includes(st.pattern) || st.seq === undefined)
                continue;
            if (st.epoch === undefined)
                this.unresumable(topic, st);
            else if (this.resumable(topic, st)) {
                since[topic] = { seq: st.seq, epoch: st.epoch };
                resumed.push(topic);
            }
        }
        if (resumed.length)
            msg.since = since;
        return resumed;
    }
    /** A wildcard topic whose epoch the client never learnt cannot resume: it starts over from its snapshot. */
    unresumable(topic, st) {
        if (st.seq === undefined)
            return;
        st.seq = undefined;
        this.emit("recovery", { topic, recovered: false, reason: "unknown_epoch" });
    }
    /** Resumed wildcard topics the server no longer has (after a restart, before a feed publishes them again): the
     *  ack names neither their epoch nor an outcome; they start over with their first tick. */
    matchedGone(resumed, ack) {
        for (const topic of resumed) {
            const st = this.matched.get(topic);
            if (!st || ack.epochs?.[topic] !== undefined || ack.recovery?.[topic] !== undefined)
                continue;
            st.seq = undefined;
            st.epoch = undefined;
            this.emit("recovery", { topic, recovered: false, reason: "no_history" });
        }
    }
    handle(msg) {
        switch (msg.type) {
            case "tick":
            case "trade":
            case "bar":
            case "book": {
                const st = this.stateOf(msg.topic, true);
                if (!st)
                    return;
                if (st.pattern !== undefined && st.epoch === undefined && !st.named)
                    this.learnEpoch(msg.topic, st);
                const gap = unannouncedGap(st.seq, msg.seq);
                if (gap)
                    this.emit("gap", { topic: msg.topic, from: gap[0], to: gap[1], reason: "unannounced" });
                st.seq = msg.seq;
                st.stale = false;
                if (msg.type === "book")
                    this.books.get(msg.topic)?.onMessage(msg);
                this.emit(msg.type, msg);
                return;
            }
            case "gap": {
                const st = this.stateOf(msg.topic, true);
                if (!st)
                    return;
                this.emit("gap", { topic: msg.topic, from: msg.from, to: msg.to, reason: msg.reason });
                st.seq = msg.to;
                this.books.get(msg.topic)?.onGap(msg.from, msg.to, msg.reason);
                return;
            }
            case "reset": {
                const st = this.stateOf(msg.topic, true);
                if (!st)
                    return;
                st.epoch = msg.epoch;
                st.seq = undefined; // the new seq space's first tick is a fresh start
                this.emit("reset", { topic: msg.topic, epoch: msg.epoch });
                this.books.get(msg.topic)?.onReset(msg.epoch);
                return;
            }
            case "heartbeat": {
                const st = this.stateOf(msg.topic, true);
                if (!st)
                    return;
                this.emit("heartbeat", { topic: msg.topic, seq: msg.seq, ts: msg.ts, feed_up: msg.feed_up });
                if (!msg.feed_up && !st.stale) {
                    st.stale = true;
                    this.emit("stale", { topic: msg.topic, lastSeq: msg.seq });
                }
                else if (msg.feed_up)
                    st.stale = false;
                return;
            }
            case "subscribed": {
                const recovery = msg.recovery ?? {};
                for (const [topic, epoch] of Object.entries(msg.epochs ?? {})) {
                    const st = this.stateOf(topic, true); // with a pattern: the topics it matched so far
                    if (!st)
                        continue;
                    const rec = recovery[topic];
                    if (rec) {
                        if (!rec.recovered)
                            st.seq = undefined; // the snapshot that follows is a fresh start, not a gap
                        // An SSE stream reopened for a topic change resumes every other topic: only a loss is news there.
                        if (!rec.recovered || !this.sseQuiet)
                            this.emit("recovery", rec.recovered ? { topic, recovered: true } : { topic, recovered: false, reason: rec.reason });
                    }
                    else if (st.epoch !== undefined && st.epoch !== epoch)
                        st.seq = undefined; // (unknown: learnt now)
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
    learnEpoch(topic, st) {
        if (this.mode !== "websocket")
            return; // an SSE stream's next ack names it (the stream names every topic)
        st.named = true;
        this.learning.add(topic);
        if (this.learning.size > 1)
            return;
        setTimeout(() => {
            const groups = byOptions([...this.learning].flatMap((t) => (this.matched.has(t) ? [[t, this.matched.get(t)]] : [])));
            this.learning.clear();
            for (const [opts, topics] of groups)
                void this.request({ op: "subscribe", topics, ...opts }).catch(() => { });
        }, LEARN_BATCH_MS);
    }
    resolve(msg) {
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
        if (!p)
            return;
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        p.resolve(msg);
    }
}
