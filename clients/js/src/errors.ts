/**
 * Typed errors, and how a refused connection is told apart from a failed one: a refused credential (HTTP 401, or
 * 403 for an Origin outside the allowlist, or a close with 1008 "token expired") will be refused again, so the
 * client stops instead of retrying forever (docs/protocol.md, "Limits and authentication").
 */

/** A server `error` reply to one request, thrown from the call that sent it; or a refused connection. */
export class TickcastError extends Error {
  /**
   * bad_request, invalid_topic, invalid_field, too_many_topics, topic_limit, forbidden, rate_limited, ...; and
   * `unauthorized` when the server refused the credential (or the Origin) of a connection.
   */
  readonly code: string;
  /** The field at fault (with invalid_field). */
  readonly field?: string;
  /** The request id. */
  readonly id?: number;
  /** The HTTP status of a refused handshake or stream (401, 403, 400), when known. */
  readonly status?: number;
  /**
   * With `forbidden` from a subscribe over WebSocket: the topics the server refused (the rest of the request was
   * subscribed, and `ack` is its `subscribed`, absent when nothing was).
   */
  readonly topics?: string[];
  /** The `subscribed` for what the server did subscribe of a partly refused request. */
  readonly ack?: Record<string, any>;
  constructor(code: string, message: string, field?: string, id?: number, status?: number) {
    super(`${code}: ${message}`);
    this.name = "TickcastError";
    this.code = code;
    this.field = field;
    this.id = id;
    this.status = status;
  }

  /** A `forbidden` subscribe: `err` with the refused topics and the ack of the rest. */
  static withTopics(err: TickcastError, topics: string[], ack: Record<string, any> | undefined): TickcastError {
    const e = new TickcastError(err.code, err.message.slice(err.code.length + 2), err.field, err.id, err.status);
    Object.assign(e, { topics, ack });
    return e;
  }
}

/** The HTTP status in a `ws` handshake failure ("Unexpected server response: 401"), if it names one. */
export function handshakeStatus(message: string): number | undefined {
  const m = /Unexpected server response: (\d{3})/.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** Whether a close frame says the credential ended the session (the server's 1008 "token expired"). */
export function isAuthClose(code: number | undefined, reason: string | undefined): boolean {
  return code === 1008 && /token expired/i.test(reason ?? "");
}

/**
 * What a refused handshake or stream means: a TickcastError `unauthorized` for a refused credential or Origin
 * (401, or 403 with the server's auth reason), the protocol error itself for a refused SSE query (400, or 403
 * `forbidden` topics: its JSON is an `error` message), undefined for anything worth retrying (429, 503, 5xx, ...).
 */
export function refusal(status: number, body: string): TickcastError | undefined {
  let json: any;
  try {
    json = JSON.parse(body);
  } catch {
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
