/**
 * The Server-Sent Events transport (docs/protocol.md, "SSE transport"): `GET /sse?topics=...` streams the same
 * JSON messages a WebSocket gets, one event each. A stream carries a fixed topic set, so subscribing means
 * reopening it; the event id (`<epoch>.<seq>.<seq>...`, one seq per named topic in URL order) lets a reopened
 * stream resume every topic exactly. Browsers (and any runtime with a global EventSource) use EventSource; Node 20
 * has none, so a small fetch()-based reader does the same job without a runtime dependency.
 * @internal
 */
import { isPattern } from "./wildcard.js";
/**
 * The `text/event-stream` line parser of the HTML standard, fed chunks of text as they arrive (a line or an event
 * may span chunks). `retry:` is ignored: the client keeps its own backoff.
 */
export class SseParser {
    constructor() {
        this.lastEventId = "";
        this.rest = "";
        this.data = [];
        this.sawCr = false;
    }
    /** Feeds decoded text; returns the events it completed. */
    push(text) {
        const out = [];
        // A CRLF split across chunks: the LF belongs to the CR that ended the previous chunk's line.
        if (this.sawCr && text.startsWith("\n"))
            text = text.slice(1);
        this.sawCr = false;
        let buf = this.rest + text;
        let start = 0;
        for (let i = 0; i < buf.length; i++) {
            const c = buf.charCodeAt(i);
            if (c !== 10 && c !== 13)
                continue;
            this.line(buf.slice(start, i), out);
            if (c === 13) {
                if (i + 1 === buf.length)
                    this.sawCr = true;
                else if (buf.charCodeAt(i + 1) === 10)
                    i++;
            }
            start = i + 1;
        }
        this.rest = buf.slice(start);
        return out;
    }
    line(line, out) {
        if (line === "") {
            if (this.data.length)
                out.push({ data: this.data.join("\n"), lastEventId: this.lastEventId });
            this.data = [];
            return;
        }
        if (line.startsWith(":"))
            return; // a comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" "))
            value = value.slice(1);
        if (field === "data")
            this.data.push(value);
        else if (field === "id" && !value.includes("\0"))
            this.lastEventId = value;
    }
}
/**
 * The event id a stream of these topics resumes from, built from what the client processed (the same id the server
 * would have sent after those events): the epoch most topics are in, then one seq per named topic in order, 0 for a
 * topic with nothing to resume (it starts from its snapshot). Undefined when no topic has anything to resume.
 */
export function sseResumeId(topics) {
    const named = topics.filter((t) => !isPattern(t.topic));
    const votes = new Map();
    for (const t of named)
        if (t.seq !== undefined && t.epoch !== undefined)
            votes.set(t.epoch, (votes.get(t.epoch) ?? 0) + 1);
    let epoch;
    for (const [e, n] of votes)
        if (epoch === undefined || n > votes.get(epoch))
            epoch = e;
    if (epoch === undefined)
        return undefined;
    return [epoch, ...named.map((t) => (t.epoch === epoch && t.seq !== undefined ? t.seq : 0))].join(".");
}
/** The HTTP endpoint next to a `/ws` URL (`sse`, `topics`): same host, http(s) for ws(s), its last `/ws` replaced. */
export function siblingUrl(wsUrl, endpoint) {
    const u = new URL(wsUrl);
    u.protocol = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
    u.pathname = /\/ws\/?$/.test(u.pathname) ? u.pathname.replace(/\/ws\/?$/, `/${endpoint}`) : `/${endpoint}`;
    u.search = "";
    return u.toString();
}
/** The stream's URL: topics (throttles as `@<n>ms`), heartbeat_ms, and the token when no header can carry it. */
export function sseStreamUrl(base, topics, heartbeatMs, queryToken) {
    const u = new URL(base);
    const entries = topics.map((t) => (t.throttleMs !== undefined ? `${t.topic}@${t.throttleMs}ms` : t.topic));
    u.searchParams.set("topics", entries.join(","));
    if (heartbeatMs !== undefined)
        u.searchParams.set("heartbeat_ms", String(heartbeatMs));
    if (queryToken)
        u.searchParams.set("token", queryToken);
    return u.toString();
}
/**
 * Opens one stream. With an EventSource constructor (the browser's, or one given) the token must already be in
 * the URL; the fetch reader sends it as `Authorization: Bearer` and the resume point as `Last-Event-ID`. Either
 * way a cut ends the stream (EventSource's own reconnect is stopped): the client reconnects with its backoff and
 * an id built from what it processed, so it never depends on which id the runtime kept.
 */
export function openSse(url, lastEventId, token, ES, h) {
    if (ES)
        return openEventSource(url, lastEventId, ES, h);
    return openFetch(url, lastEventId, token, h);
}
function withId(url, lastEventId) {
    if (lastEventId === undefined)
        return url;
    const u = new URL(url);
    u.searchParams.set("last_event_id", lastEventId);
    return u.toString();
}
/** A stream's end, told at most once: by the stream itself (`onEnd`), or silently by `close()`. */
function ending(stop, h) {
    let ended = false;
    return {
        get ended() {
            return ended;
        },
        end(e) {
            if (ended)
                return;
            ended = true;
            stop();
            h.onEnd(e);
        },
        close() {
            ended = true;
            stop();
        },
    };
}
function openEventSource(url, lastEventId, ES, h) {
    // The first request of an EventSource sends no Last-Event-ID: the documented query parameter carries it.
    const es = new ES(withId(url, lastEventId));
    const life = ending(() => es.close(), h);
    es.onopen = () => h.onOpen();
    es.onmessage = (ev) => { if (!life.ended)
        h.onMessage(ev.data); };
    // CLOSED after an error: the response was not a 200 event stream (a refusal); CONNECTING: a cut.
    es.onerror = () => life.end(es.readyState === 2 ? { refused: true } : { reason: "event stream cut" });
    return { close: life.close };
}
function openFetch(url, lastEventId, token, h) {
    const abort = new AbortController();
    const life = ending(() => abort.abort(), h);
    const end = life.end;
    const headers = { accept: "text/event-stream" };
    if (token)
        headers.authorization = `Bearer ${token}`;
    if (lastEventId !== undefined)
        headers["last-event-id"] = lastEventId;
    void (async () => {
        try {
            const res = await fetch(url, { headers, signal: abort.signal, cache: "no-store" });
            if (res.status !== 200 || !res.body)
                return end({ status: res.status, body: await res.text() });
            h.onOpen();
            const reader = res.body.getReader();
            const decoder = new TextDecoder();
            const parser = new SseParser();
            for (;;) {
                const { done, value } = await reader.read();
                if (done || life.ended)
                    break;
                for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
                    if (life.ended)
                        break;
                    h.onMessage(ev.data);
                }
            }
            end({ reason: "event stream ended" });
        }
        catch (e) {
            end({ reason: String(e?.message ?? e) });
        }
    })();
    return { close: life.close };
}
/**
 * The HTTP status (and body, when not 2xx) `url` answers with, without reading a 2xx body (a stream or a list);
 * undefined when it cannot be reached or read (down, or a cross-origin page the server sends no CORS headers to).
 * Used where a runtime hides a refusal's status (browser WebSockets and EventSource), and to tell a WebSocket that a
 * proxy refuses (the server answers HTTP) from a server that is down.
 */
export async function probe(url, token) {
    if (typeof fetch !== "function")
        return undefined;
    const abort = new AbortController();
    try {
        const headers = token ? { authorization: `Bearer ${token}` } : {};
        const res = await fetch(url, { headers, signal: abort.signal, cache: "no-store" });
        const body = res.ok ? "" : await res.text();
        abort.abort();
        return { status: res.status, body };
    }
    catch {
        abort.abort();
        return undefined;
    }
}
