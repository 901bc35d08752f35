#!/usr/bin/env node
// Checks docs/asyncapi.yaml against the real AsyncAPI parser, and real messages against its schemas.
//
//   node docs/test/validate.mjs [--doc FILE] [--summary OUT.json] [--requests REQUESTS.ndjson] [MESSAGES.ndjson]
//
// 1. Parses the document with @asyncapi/parser (which also runs its Spectral ruleset) and fails on
//    any diagnostic of error severity. Warnings and hints are printed, not fatal.
// 2. Builds the schema of every message from the parsed document: server messages (those of
//    `receive` operations and of operation replies) keyed by the `const` of their `type` property,
//    client requests (those of `send` operations) keyed by the `const` of `op`. Every message's own
//    `examples` must validate against its payload (the parser's 3.0 ruleset does not check them).
// 3. With MESSAGES.ndjson (one server message per line, as received): validates each message
//    against the schema of the type it claims. A message whose type has no schema, or that does not
//    validate, fails the run. With --requests, the same for client requests, keyed by `op`.
//
// Reports per type how many messages validated (errors also per code, ticks per channel), and with
// --summary writes the same as JSON for a program to check. Exit status: 0 when everything
// validated, 1 otherwise, 2 for bad usage.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';
import Ajv from 'ajv';

const here = dirname(fileURLToPath(import.meta.url));
const SHOWN_FAILURES = 5;

function usage(msg) {
  console.error(`validate.mjs: ${msg}`);
  console.error(
    'usage: node validate.mjs [--doc FILE] [--summary OUT.json] [--requests REQUESTS.ndjson] [MESSAGES.ndjson]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const args = { doc: resolve(here, '../asyncapi.yaml'), summary: null, requests: null, messages: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--doc') args.doc = resolve(value());
    else if (a === '--summary') args.summary = resolve(value());
    else if (a === '--requests') args.requests = resolve(value());
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (args.messages) usage('only one messages file');
    else args.messages = resolve(a);
  }
  return args;
}

const severityName = (s) => DiagnosticSeverity[s] ?? String(s);

/** The parsed document; exits when the parser reports an error. */
async function parseDocument(path, summary) {
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, path).parse();
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const where = d.path?.length ? d.path.join('.') : '(document)';
    console.log(`  ${severityName(d.severity).toLowerCase()} ${d.code} at ${where}: ${d.message}`);
  }
  summary.document = {
    path,
    asyncapi: document?.version() ?? null,
    errors: errors.length,
    warnings: diagnostics.length - errors.length,
  };
  if (!document || errors.length > 0) {
    console.log(`FAIL ${path}: ${errors.length} error diagnostic(s) from @asyncapi/parser`);
    return null;
  }
  console.log(
    `ok   ${path}: AsyncAPI ${document.version()}, no errors (${diagnostics.length} other diagnostic(s))`,
  );
  return document;
}

/** Annotation keywords the parser adds (`x-parser-schema-id`) or authors use (`x-...`), so Ajv's
 * strict mode accepts them while still rejecting misspelled real keywords. */
function collectExtensionKeys(schema, into = new Set()) {
  if (Array.isArray(schema)) schema.forEach((s) => collectExtensionKeys(s, into));
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k.startsWith('x-')) into.add(k);
      collectExtensionKeys(v, into);
    }
  }
  return into;
}

/** Per discriminator value (`type` for server messages, `op` for requests), the message and its
 * compiled schema. */
function messageSchemas(document, ajv, failures) {
  const annotations = new Set();
  const server = new Map();
  const client = new Map();
  const add = (map, key, message, direction) => {
    const payload = message.payload()?.json();
    const value = payload?.properties?.[key]?.const;
    if (typeof value !== 'string') {
      failures.push(`message ${message.id()} (${direction}) has no "${key}" property with a const value`);
      return;
    }
    const seen = map.get(value);
    if (seen) {
      if (seen.id !== message.id()) {
        failures.push(`${key} "${value}" is claimed by messages ${seen.id} and ${message.id()}`);
      }
      return;
    }
    for (const k of collectExtensionKeys(payload)) {
      if (!annotations.has(k)) ajv.addKeyword(k);
      annotations.add(k);
    }
    let validate = null;
    try {
      validate = ajv.compile(payload);
    } catch (e) {
      failures.push(`message ${message.id()}: its payload schema does not compile: ${e.message}`);
    }
    map.set(value, { id: message.id(), validate, message });
  };
  for (const op of document.operations().all()) {
    if (op.isReceive()) op.messages().all().forEach((m) => add(server, 'type', m, 'receive'));
    if (op.isSend()) op.messages().all().forEach((m) => add(client, 'op', m, 'send'));
    const reply = op.reply();
    if (reply) reply.messages().all().forEach((m) => add(server, 'type', m, 'reply'));
  }
  return { server, client };
}

function describeErrors(errors) {
  return (errors ?? [])
    .map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`)
    .join('; ');
}

/** Every message's own examples validate against its payload. */
function checkExamples(schemas, failures) {
  let n = 0;
  for (const { id, validate, message } of schemas.values()) {
    if (!validate) continue;
    for (const ex of message.examples().all()) {
      n++;
      if (!validate(ex.payload())) {
        failures.push(`example ${ex.name() ?? '(unnamed)'} of message ${id}: ${describeErrors(validate.errors)}`);
      }
    }
  }
  return n;
}

/** Validates each line of an NDJSON file against the schema its `key` names. */
function checkFile(path, key, schemas, failures, label) {
  const report = { lines: 0, types: {}, errorCodes: {}, tickChannels: {}, unknownTypes: {} };
  const text = readFileSync(path, 'utf8');
  const perType = new Map();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    report.lines++;
    const where = `${path}:${i + 1}`;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      failures.push(`${where}: not JSON (${e.message}): ${line.slice(0, 200)}`);
      return;
    }
    const ty = msg?.[key];
    const entry = typeof ty === 'string' ? schemas.get(ty) : undefined;
    if (!entry) {
      const name = typeof ty === 'string' ? ty : JSON.stringify(ty ?? null);
      report.unknownTypes[name] = (report.unknownTypes[name] ?? 0) + 1;
      failures.push(`${where}: no schema in the document for ${label} ${key} ${name}: ${line.slice(0, 200)}`);
      return;
    }
    const t = perType.get(ty) ?? { ok: 0, bad: 0, shown: 0 };
    perType.set(ty, t);
    if (!entry.validate) {
      t.bad++;
      if (t.shown++ === 0) failures.push(`${where}: ${key} ${ty}: message ${entry.id} has no usable schema`);
    } else if (entry.validate(msg)) {
      t.ok++;
      if (ty === 'error') report.errorCodes[msg.code] = (report.errorCodes[msg.code] ?? 0) + 1;
      if (ty === 'tick') {
        const channel = String(msg.topic).split('.')[0];
        report.tickChannels[channel] = (report.tickChannels[channel] ?? 0) + 1;
      }
    } else {
      t.bad++;
      if (t.shown++ < SHOWN_FAILURES) {
        failures.push(`${where}: ${key} ${ty} does not match message ${entry.id}: ${describeErrors(entry.validate.errors)}: ${line.slice(0, 300)}`);
      } else if (t.shown === SHOWN_FAILURES + 1) {
        failures.push(`${path}: more ${ty} messages fail; only the first ${SHOWN_FAILURES} are shown`);
      }
    }
  });
  for (const [ty, t] of [...perType].sort()) {
    report.types[ty] = t.ok;
    let detail = '';
    if (ty === 'error' && t.ok) detail = `  codes: ${fmtCounts(report.errorCodes)}`;
    if (ty === 'tick' && t.ok) detail = `  channels: ${fmtCounts(report.tickChannels)}`;
    const bad = t.bad ? `, ${t.bad} INVALID` : '';
    console.log(`     ${label} ${ty.padEnd(14)} ${String(t.ok).padStart(6)} valid${bad}${detail}`);
  }
  for (const [ty, n] of Object.entries(report.unknownTypes)) {
    console.log(`     ${label} ${ty.padEnd(14)} ${String(n).padStart(6)} WITHOUT A SCHEMA`);
  }
  return report;
}

function fmtCounts(o) {
  return Object.entries(o)
    .sort()
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const summary = { ok: false };
  const failures = [];
  const document = await parseDocument(args.doc, summary);
  if (document) {
    const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
    const { server, client } = messageSchemas(document, ajv, failures);
    summary.serverTypes = [...server.keys()].sort();
    summary.clientOps = [...client.keys()].sort();
    // The error codes the document declares, for a program to compare with the server's own list.
    const codes = server.get('error')?.message.payload()?.json()?.properties?.code?.enum;
    summary.documentErrorCodes = Array.isArray(codes) ? [...codes].sort() : [];
    const examples = checkExamples(server, failures) + checkExamples(client, failures);
    console.log(`     server message types: ${summary.serverTypes.join(', ')}`);
    console.log(`     client requests (op): ${summary.clientOps.join(', ')}`);
    console.log(`     ${examples} message examples checked against their payloads`);
    if (args.messages) {
      console.log(`     ${args.messages}:`);
      summary.messages = checkFile(args.messages, 'type', server, failures, 'server');
    }
    if (args.requests) {
      console.log(`     ${args.requests}:`);
      summary.requests = checkFile(args.requests, 'op', client, failures, 'client');
    }
  }
  summary.failures = failures;
  summary.ok = document !== null && failures.length === 0;
  for (const f of failures) console.log(`FAIL ${f}`);
  if (args.summary) writeFileSync(args.summary, JSON.stringify(summary, null, 2) + '\n');
  console.log(summary.ok ? 'ok   everything validated' : `FAIL ${failures.length || 'parser'} problem(s)`);
  process.exit(summary.ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e?.stack ?? String(e));
  process.exit(1);
});
