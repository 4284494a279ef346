// A static server for the built app (dist/), shared by the end-to-end tests and the app
// benchmark: loopback only, correct MIME types (application/wasm for streaming compile).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const MIME = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm',
  '.css': 'text/css', '.gz': 'application/gzip', '.json': 'application/json',
  '.jsonl': 'application/jsonl',
};

export async function serveDist(dist) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const file = path.join(dist, url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname));
    if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return listen(server);
}

/// A second site for data links: serves the files of `root` and logs every request.
/// With `cors`, every answer (errors too) lets any page read it; without, none does.
export async function serveFiles(root, { cors }) {
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const headers = cors ? { 'access-control-allow-origin': '*' } : {};
    const file = path.join(root, decodeURIComponent(new URL(req.url, 'http://localhost').pathname));
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return { ...(await listen(server)), requests };
}

/// A port on 127.0.0.1 where nothing listens.
export async function deadPort() {
  const server = http.createServer();
  const { origin, close } = await listen(server);
  await close();
  return Number(new URL(origin).port);
}

async function listen(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    // Open keep-alive connections too, so a closed server really is gone.
    close: () => new Promise((resolve) => { server.close(resolve); server.closeAllConnections(); }),
  };
}

/// Chromium flags for a machine with no network, running as root.
/// The same, with WebGPU on Chromium's SwiftShader (a software Vulkan device).
export const WEBGPU_ARGS = () => [...CHROMIUM_ARGS.filter((arg) => arg !== '--disable-gpu'),
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader', '--disable-vulkan-surface'];

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
