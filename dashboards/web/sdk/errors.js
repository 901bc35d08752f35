/**
 * Typed errors, and how a refused connection is told apart from a failed one: a refused credential (HTTP 401, or
 * 403 for an Origin outside the allowlist, or a close with 1008 "token expired") will be refused again, so the
 * client stops instead of retrying forever (docs/protocol.md, "Limits and authentication").
 */
/** A server `error` reply to one request, thrown from the call that sent it; or a refused connection. */
export class TickcastError extends Error {
    constructor(code, message, field, id, status) {
        super(`${code}: ${message}`);
        this.name = "TickcastError";
        this.code = code;
        this.field = field;
        this.id = id;
        this.status = status;
    }
    /** A `forbidden` subscribe: `err` with the refused topics and the ack of the rest. */
    static withTopics(err, topics, ack) {
        const e = new TickcastError(err.code, err.message.slice(err.code.length + 2), err.field, err.id, err.status);
        Object.assign(e, { topics, ack });
        return e;
    }
}
/** The HTTP status in a `ws` handshake failure ("Unexpected server response: 401"), if it names one. */
export function handshakeStatus(message) {
    const m = /Unexpected server response: (\d{3})/.exec(message);
    return m ? Number(m[1]) : undefined;
}
/** Whether a close frame says the credential ended the session (the server's 1008 "token expired"). */
export function isAuthClose(code, reason) {
    return code === 1008 && /token expired/i.test(reason ?? "");
}
/**
 * What a refused handshake or stream means: a TickcastError `unauthorized` for a refused credential or Origin
 * (401, or 403 with the server's auth reason), the protocol error itself for a refused SSE query (400, or 403
 * `forbidden` topics: its JSON is an `error` message), undefined for anything worth retrying (429, 503, 5xx, ...).
 */
export function refusal(status, body) {
    let json;
    try {
        json = JSON.parse(body);
    }
    catch {
        json = undefined;
    }
    if (json?.type === "error" && typeof json.code === "string")
        return new TickcastError(json.code, json.message ?? "", json.field, undefined, status);
    if (status === 401 || status === 403) {
        const why = typeof json?.error === "string" ? `${json.error}: ${json.message ?? ""}` : `HTTP ${status}`;
        return new TickcastError("unauthorized", why, undefined, undefined, status);
    }
    return undefined;
}
