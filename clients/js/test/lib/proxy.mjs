// An HTTP proxy in front of a tickcast that refuses WebSockets, as some corporate proxies do: it forwards plain
// requests (the /sse stream chunk by chunk, /topics, ...) and strips the Upgrade of a WebSocket handshake, so the
// server answers it as a plain GET (426). `serve(req, res)` may answer a request itself (return true), e.g. pages.
import { createServer, request } from "node:http";

const HOP = ["connection", "upgrade", "keep-alive", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"];

function forward(targetPort, req, onResponse, onError) {
  const headers = { ...req.headers };
  for (const h of HOP) delete headers[h];
  const up = request({ host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers }, onResponse);
  up.on("error", onError);
  up.end();
  return up;
}

export async function startProxy(targetPort, serve = () => false) {
  const server = createServer((req, res) => {
    if (serve(req, res)) return;
    const up = forward(targetPort, req, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
      // A server that goes away mid-stream (a restart) cuts the client's stream too, rather than leave it open.
      r.on("close", () => { if (!res.writableEnded) res.destroy(); });
    },
      () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    res.on("close", () => up.destroy());
  });
  server.on("upgrade", (req, socket) => {
    socket.on("error", () => {});
    forward(targetPort, req, (r) => {
      socket.write(`HTTP/1.1 ${r.statusCode} ${r.statusMessage}\r\nconnection: close\r\ncontent-type: ${r.headers["content-type"] ?? "text/plain"}\r\n\r\n`);
      r.pipe(socket);
    }, () => socket.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    close: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); },
  };
}
