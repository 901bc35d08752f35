/**
 * Wildcard subscriptions (docs/protocol.md, "Wildcard subscriptions"): a pattern `<prefix>.*` brings every topic a
 * feed publishes under the prefix, now and later, and the server never names the later ones in an ack. The client
 * tells which pattern a topic it did not name belongs to, to keep its seq and epoch like a named topic's.
 * @internal
 */

/** Whether a subscribe entry is a wildcard pattern (it has no place in an SSE event id). */
export function isPattern(entry: string): boolean {
  return entry.endsWith(".*");
}

/** Whether pattern `<prefix>.*` matches `topic`: the prefix and its dot (whole segments), then at least a character. */
export function matches(pattern: string, topic: string): boolean {
  const prefix = pattern.slice(0, -1);
  return isPattern(pattern) && topic.length > prefix.length && topic.startsWith(prefix);
}

/** The first of `entries` that is a pattern matching `topic`, if any. */
export function patternFor(entries: Iterable<string>, topic: string): string | undefined {
  for (const e of entries) if (matches(e, topic)) return e;
  return undefined;
}

/**
 * The named topics of a subscribe the server refused as `forbidden`: those asked for that its `subscribed` does not
 * list (every one when no `subscribed` followed the error). Patterns are never refused as a whole.
 */
export function refusedTopics(asked: string[], ack: { topics?: string[] } | undefined): string[] {
  const granted = new Set(ack?.topics ?? []);
  return [...new Set(asked.filter((t) => !isPattern(t) && !granted.has(t)))];
}
