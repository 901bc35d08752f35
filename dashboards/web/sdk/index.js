/**
 * tickcast client (protocol v2, docs/protocol.md): one WebSocket that reconnects with full-jitter exponential
 * backoff, resubscribes with `since` (last seq + epoch per topic) and reports what it could not recover, gaps
 * (server markers and any unannounced seq jump), heartbeats, stale feeds and server errors as typed values.
 * Market data: `trade` and `bar` events, and order books kept from `book.<SYM>` with every checksum verified
 * ({@link TickcastClient.book}, {@link OrderBook}).
 * Zero runtime dependencies in browsers; in Node without a global WebSocket it loads the `ws` package.
 * @packageDocumentation
 */
import { OrderBook } from "./book.js";
import { ClockSync } from "./clocksync.js";
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
    /** @internal */
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
/** A server `error` reply to one request, thrown from the call that sent it. */
export class TickcastError extends Error {
    constructor(code, message, field, id) {
        super(`${code}: ${message}`);
        this.name = "TickcastError";
        this.code = code;
        this.field = field;
        this.id = id;
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
const isNode = typeof process !== "undefined" && !!process.versions?.node;
/** A tickcast connection; see the package docs. */
export class TickcastClient {
    constructor(url, options = {}) {
        /** The current connection state. */
        this.state = "disconnected";
        this.ws = null;
        this.nextId = 1;
        this.pending = new Map();
        this.topics = new Map();
        this.books = new Map();
        this.listeners = new Map();
        this.closed = false;
        this.attempt = 0;
        this.timer = null;
        this.openWaiters = [];
        this.clockSync = null;
        this.clock = null;
        this.url = url;
        this.opts = { reconnectMinMs: 100, reconnectMaxMs: 10000, requestTimeoutMs: 10000, ...options };
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
    /** The last seq received of a subscribed topic and the epoch it belongs to (what a reconnect resumes from). */
    position(topic) {
        const st = this.topics.get(topic);
        return st && { seq: st.seq, epoch: st.epoch };
    }
    /** Connects now if no socket is open or opening (skipping the backoff wait), e.g. when the browser comes online. */
    reconnectNow() {
        if (this.closed || this.ws)
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
    /** Opens the connection (and keeps reopening it until close()); resolves once connected. */
    connect() {
        this.closed = false;
        const opened = new Promise((resolve) => this.openWaiters.push(resolve));
        if (!this.ws && !this.timer)
            void this.open();
        else if (this.state === "connected")
            return Promise.resolve();
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
    }
    /** Drops the current connection as a network failure would (the client reconnects); for tests and demos. */
    dropConnection() {
        this.ws?.close(4000, "dropped by the client");
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
        let ws;
        try {
            const WS = await this.webSocketClass();
            const t = this.opts.token;
            const token = typeof t === "function" ? await t() : t;
            const nodeWs = isNode && WS !== globalThis.WebSocket;
            if (token && nodeWs)
                ws = new WS(this.url, { headers: { Authorization: `Bearer ${token}` } });
            else if (token)
                ws = new WS(this.url, ["tickcast.v1", `bearer.${token}`]);
            else
                ws = new WS(this.url);
        }
        catch (e) {
            this.setState({ state: "disconnected", reason: String(e) });
            this.scheduleReconnect();
            return;
        }
        this.ws = ws;
        let failure = "";
        ws.onopen = () => {
            this.attempt = 0;
            this.setState({ state: "connected" });
            for (const w of this.openWaiters.splice(0))
                w();
            void this.resubscribeAll();
        };
        ws.onmessage = (ev) => {
            if (typeof ev.data !== "string")
                return;
            let msg;
            try {
                msg = JSON.parse(ev.data);
            }
            catch {
                return;
            }
            this.emit("message", msg);
            this.handle(msg);
        };
        ws.onerror = (ev) => {
            failure = String(ev?.message ?? ev?.error ?? "error");
        };
        ws.onclose = (ev) => {
            this.ws = null;
            this.failPending(new Error("connection closed"));
            this.setState({ state: "disconnected", code: ev.code, reason: ev.reason || failure });
            this.scheduleReconnect();
        };
    }
    scheduleReconnect() {
        if (this.closed)
            return;
        const delay = backoffDelay(this.attempt++, this.opts.reconnectMinMs, this.opts.reconnectMaxMs, Math.random());
        this.timer = setTimeout(() => {
            this.timer = null;
            void this.open();
        }, delay);
    }
    failPending(err) {
        for (const p of this.pending.values()) {
            clearTimeout(p.timer);
            p.reject(err);
        }
        this.pending.clear();
    }
    request(msg) {
        if (!this.ws || this.state !== "connected")
            return Promise.reject(new Error("not connected"));
        const id = this.nextId++;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new Error(`no reply to request ${id}`));
            }, this.opts.requestTimeoutMs);
            this.pending.set(id, {
                timer,
                reject,
                resolve: (reply) => {
                    if (reply.type === "error")
                        reject(new TickcastError(reply.code, reply.message, reply.field, id));
                    else
                        resolve(reply);
                },
            });
            this.ws.send(JSON.stringify({ ...msg, id }));
        });
    }
    subscribeMsg(topics, opts) {
        const since = {};
        for (const t of topics) {
            const st = this.topics.get(t);
            // A book not held (or not verified) gains nothing from the deltas after its seq: take the snapshot.
            if (this.books.has(t) && !this.books.get(t).book.valid)
                continue;
            if (st?.seq !== undefined && st.epoch !== undefined)
                since[t] = { seq: st.seq, epoch: st.epoch };
        }
        const msg = { op: "subscribe", topics, ...opts };
        if (Object.keys(since).length)
            msg.since = since;
        return msg;
    }
    /** Subscribes; resolves with the `subscribed` ack, rejects with a TickcastError. Ticks come as `tick` events. */
    async subscribe(topics, options = {}) {
        const opts = { ...options.extra };
        const hb = options.heartbeatMs ?? this.opts.heartbeatMs;
        if (hb !== undefined)
            opts.heartbeat_ms = hb;
        if (options.throttleMs !== undefined)
            opts.throttle_ms = options.throttleMs;
        const fresh = topics.filter((t) => !this.topics.has(t));
        for (const t of fresh)
            this.topics.set(t, { stale: false, opts });
        const msg = this.subscribeMsg(topics, opts);
        if (options.since)
            msg.since = { ...options.since, ...msg.since };
        try {
            return await this.request(msg);
        }
        catch (e) {
            if (e instanceof TickcastError)
                for (const t of fresh)
                    this.topics.delete(t);
            throw e;
        }
    }
    /** Leaves topics; no tick of them follows the resolved promise. */
    async unsubscribe(topics) {
        const reply = await this.request({ op: "unsubscribe", topics });
        for (const t of topics) {
            this.topics.delete(t);
            this.books.get(t)?.stop();
            this.books.delete(t);
        }
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
        const held = this.topics.has(topic); // subscribed already: only a new subscribe brings a snapshot
        this.books.set(topic, sub);
        sub.inFlight = true;
        try {
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
        await this.request({ op: "unsubscribe", topics: [topic] });
        st.seq = undefined; // the snapshot is a fresh start, not a gap
        await this.request({ op: "subscribe", topics: [topic], ...st.opts });
    }
    /** Round trip; resolves with the pong. */
    ping() {
        return this.request({ op: "ping" });
    }
    async resubscribeAll() {
        const groups = new Map();
        for (const [t, st] of this.topics) {
            const g = groups.get(st.opts) ?? [];
            g.push(t);
            groups.set(st.opts, g);
        }
        for (const [opts, topics] of groups) {
            for (let i = 0; i < topics.length; i += 100) {
                try {
                    await this.request(this.subscribeMsg(topics.slice(i, i + 100), opts));
                }
                catch {
                    return; // the connection went away again: the next open resubscribes
                }
            }
        }
    }
    handle(msg) {
        switch (msg.type) {
            case "tick":
            case "trade":
            case "bar":
            case "book": {
                const st = this.topics.get(msg.topic);
                if (!st)
                    return;
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
                const st = this.topics.get(msg.topic);
                if (!st)
                    return;
                this.emit("gap", { topic: msg.topic, from: msg.from, to: msg.to, reason: msg.reason });
                st.seq = msg.to;
                this.books.get(msg.topic)?.onGap(msg.from, msg.to, msg.reason);
                return;
            }
            case "reset": {
                const st = this.topics.get(msg.topic);
                if (!st)
                    return;
                st.epoch = msg.epoch;
                st.seq = undefined; // the new seq space's first tick is a fresh start
                this.emit("reset", { topic: msg.topic, epoch: msg.epoch });
                this.books.get(msg.topic)?.onReset(msg.epoch);
                return;
            }
            case "heartbeat": {
                const st = this.topics.get(msg.topic);
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
                    const st = this.topics.get(topic);
                    if (!st)
                        continue;
                    const rec = recovery[topic];
                    if (rec) {
                        if (!rec.recovered)
                            st.seq = undefined; // the snapshot that follows is a fresh start, not a gap
                        this.emit("recovery", rec.recovered ? { topic, recovered: true } : { topic, recovered: false, reason: rec.reason });
                    }
                    else if (st.epoch !== epoch)
                        st.seq = undefined;
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
    resolve(msg) {
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
