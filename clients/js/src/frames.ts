/**
 * What a received frame is: a server message, or one the client cannot use (a binary frame, text that is not JSON,
 * JSON that is not a message object). The server only sends JSON text objects, so anything else means a proxy or a
 * server bug; the client counts and reports it (`invalidFrame` events) rather than drop it silently.
 * @internal
 */

/** A frame the client could not use. */
export interface InvalidFrame {
  /** binary (a binary frame), unparsable (text that is not JSON), not_a_message (JSON without a string `type`). */
  reason: "binary" | "unparsable" | "not_a_message";
  /** Its size in bytes (binary) or characters (text). */
  size: number;
  /** The first 80 characters of a text frame ("" for a binary one), for a log line. */
  sample: string;
}

const SAMPLE = 80;

/** The size of binary frame data as runtimes deliver it (ArrayBuffer, Node Buffer or typed array, Blob). */
function binarySize(data: any): number {
  if (typeof data?.byteLength === "number") return data.byteLength;
  if (typeof data?.size === "number") return data.size;
  if (Array.isArray(data)) return data.reduce((n: number, b: any) => n + binarySize(b), 0); // ws fragments
  return 0;
}

/** Parses a frame's data: the message, or why it is not one. */
export function parseFrame(data: unknown): {
  /** The parsed server message (an object with a string `type`). */
  msg: Record<string, any>;
} | {
  /** Why the frame is not a message. */
  invalid: InvalidFrame;
} {
  if (typeof data !== "string") return { invalid: { reason: "binary", size: binarySize(data), sample: "" } };
  let msg: any;
  try {
    msg = JSON.parse(data);
  } catch {
    return { invalid: { reason: "unparsable", size: data.length, sample: data.slice(0, SAMPLE) } };
  }
  if (msg === null || typeof msg !== "object" || Array.isArray(msg) || typeof msg.type !== "string")
    return { invalid: { reason: "not_a_message", size: data.length, sample: data.slice(0, SAMPLE) } };
  return { msg };
}
