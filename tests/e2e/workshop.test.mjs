// End-to-end tests of the two things a workshop and a collaborator need: the app works with
// the network off after one visit (service worker), and a `#data=` link brings its data —
// only when the user asks, streamed like a dropped file, with plain words when it fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { serveDist, serveFiles, deadPort, CHROMIUM_ARGS } from './serve.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const dist = process.env.TRACESIFT_DIST ?? path.join(root, 'dist');
const cli = process.env.TRACESIFT_CLI ?? path.join(root, 'target/release/tracesift');
const shots = process.env.TRACESIFT_SCREENSHOTS ?? path.join(root, 'target/screenshots');
const fixture = (name) => path.join(root, 'tests/data', name);

/// What the demo holds (xtask/src/demo.rs, DEMO_OPTIONS).
const DEMO_SUMMARY = /1800 traces, 200 questions, 3 classes, format canonical/;

let app, browser, dataDir;

before(async () => {
  app = await serveDist(dist);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
  // The files a collaborator would host: a plain and a gzipped trace file.
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracesift-links-'));
  fs.copyFileSync(fixture('small.jsonl'), path.join(dataDir, 'small.jsonl'));
  fs.writeFileSync(path.join(dataDir, 'small.jsonl.gz'), zlib.gzipSync(fs.readFileSync(fixture('small.jsonl'))));
});

after(async () => {
  await browser?.close();
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/// A page that records every request and every console error or page error.
async function openPage(url, context) {
  const ownContext = context ?? await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await ownContext.newPage();
  const requests = [];
  const errors = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(url);
  await page.getByTestId('file-input').waitFor();
  return { context: ownContext, page, requests, errors };
}

async function summaryText(page, expected) {
  await page.waitForFunction(
    (text) => document.querySelector('[data-testid=summary]')?.textContent.includes(text),
    expected, { timeout: 60_000 });
  return page.getByTestId('summary').textContent();
}

test('after one visit the app opens and scores the demo with the network off', async () => {
  // A server of its own, shut down before the offline reload: everything must then come
  // from what the service worker cached.
  const server = await serveDist(dist);
  const { context, page, errors } = await openPage(`${server.origin}/`);
  await page.getByTestId('offline-ready').waitFor({ timeout: 60_000 });
  // The first visit finishes loading (the worker's wasm too) before the network goes.
  await page.waitForLoadState('networkidle');
  await server.close();
  await context.setOffline(true);
  const started = Date.now();
  await page.reload();
  await page.getByTestId('file-input').waitFor();
  const reloadMs = Date.now() - started;
  const clicked = Date.now();
  await page.getByTestId('demo').click();
  assert.match(await summaryText(page, '1800 traces'), DEMO_SUMMARY);
  const toSummaryMs = Date.now() - clicked;
  // Scoring and filtering work too: the per-class counts and the charts' data are there.
  assert.match(await page.getByTestId('class-counts').textContent(), /down/);
  assert.match(await page.getByTestId('kept-count').textContent(), /^\d+ traces kept\.$/);
  console.log(`# offline: page reloaded in ${reloadMs} ms, demo scored ${toSummaryMs} ms after the click`);
  await page.screenshot({ path: path.join(shots, 'offline-demo.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('once semantic similarity has been used, it works with the network off too', async () => {
  const server = await serveDist(dist);
  const { context, page, errors } = await openPage(`${server.origin}/#sim=answer`);
  await page.getByTestId('offline-ready').waitFor({ timeout: 60_000 });
  await page.waitForLoadState('networkidle');
  const texts = path.join(dataDir, 'texts.jsonl');
  fs.writeFileSync(texts, ['Gene G goes up.', 'The target rises after the knock-down.', 'G goes down.', '']
    .map((text, idx) => JSON.stringify({ question_id: 'q', trace_id: `t${idx}`, text, answer: 'up' })).join('\n'));
  await page.getByTestId('file-input').setInputFiles(texts);
  await summaryText(page, '4 traces');
  await page.getByTestId('sim').selectOption('semantic');
  await page.getByTestId('embedding').waitFor({ timeout: 60_000 });
  await page.getByTestId('scored-in').waitFor({ timeout: 300_000 });
  // The service worker stored the model the workers fetched, in the cache builds share.
  const stored = await page.evaluate(async () => {
    const cache = await caches.open('tracesift-model-all-MiniLM-L6-v2');
    return (await cache.keys()).map((request) => new URL(request.url).pathname).sort();
  });
  assert.deepEqual(stored, ['/all-MiniLM-L6-v2/config.json', '/all-MiniLM-L6-v2/model.safetensors', '/all-MiniLM-L6-v2/tokenizer.json']);
  await server.close();
  await context.setOffline(true);
  await page.reload();
  await page.getByTestId('file-input').waitFor();
  assert.equal(await page.getByTestId('sim').inputValue(), 'semantic');
  await page.getByTestId('file-input').setInputFiles(texts);
  await page.getByTestId('scored-in').waitFor({ timeout: 300_000 });
  await summaryText(page, '4 traces');
  assert.deepEqual(errors, []);
  await context.close();
});

test('the service worker leaves other sites and dropped files alone', async () => {
  const worker = fs.readFileSync(path.join(dist, 'service-worker.js'), 'utf8');
  const precache = fs.readFileSync(path.join(dist, 'precache.js'), 'utf8');
  // Every file of the build is listed (hashed names included), and nothing else: the
  // embedding model's files apart, cached only once `semantic` asks for them.
  const list = (name) => {
    const start = precache.indexOf('[', precache.indexOf(name));
    return JSON.parse(precache.slice(start, precache.indexOf(']', start) + 1).replace(/,\s*]$/, ']'));
  };
  const listed = list('TRACESIFT_FILES');
  const onDemand = list('TRACESIFT_ON_DEMAND');
  const built = fs.readdirSync(dist, { recursive: true })
    .filter((name) => fs.statSync(path.join(dist, name)).isFile())
    .filter((name) => !['service-worker.js', 'precache.js'].includes(name)).sort();
  assert.deepEqual([...listed, ...onDemand].sort(), built);
  assert.ok(listed.some((name) => /\.wasm$/.test(name)) && listed.includes('demo.jsonl.gz'));
  assert.ok(onDemand.includes('all-MiniLM-L6-v2/model.safetensors'));
  assert.deepEqual(onDemand.filter((name) => !name.startsWith('all-MiniLM-L6-v2/')), []);
  // Only same-origin GETs of listed files and the app's own page are answered.
  assert.match(worker, /if \(request\.method !== 'GET'\) return;/);
  assert.match(worker, /if \(url\.origin !== scope\.origin\) return;/);
  assert.match(worker, /if \(!isPage && !cachedPaths\.has\(url\.pathname\)\) return;/);
  // With a data link loaded, the cache holds the app's files and nothing from the other site.
  const files = await serveFiles(dataDir, { cors: true });
  const { context, page } = await openPage(`${app.origin}/#data=${files.origin}/small.jsonl`);
  await page.getByTestId('offline-ready').waitFor({ timeout: 60_000 });
  await page.getByTestId('load-linked-data').click();
  await summaryText(page, '6 traces');
  const cached = await page.evaluate(async () => {
    const urls = [];
    for (const name of await caches.keys()) {
      for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
    }
    return urls;
  });
  assert.ok(cached.length > 0);
  assert.deepEqual(cached.filter((url) => !url.startsWith(app.origin)), []);
  assert.deepEqual(cached.filter((url) => url.includes('small.jsonl')), []);
  await context.close();
  await files.close();
});

test('a data link names its URL, fetches nothing before consent, then loads like a dropped file', async () => {
  const files = await serveFiles(dataDir, { cors: true });
  const url = `${files.origin}/small.jsonl.gz`;
  const { context, page, requests, errors } = await openPage(
    `${app.origin}/#metric=msp&top=2&scope=global&export=canonical&data=${url}`);
  const prompt = page.getByTestId('linked-data');
  await prompt.waitFor();
  assert.equal(await page.getByTestId('linked-data-url').textContent(), url);
  assert.match(await prompt.textContent(), /Nothing has been downloaded yet/);
  await page.screenshot({ path: path.join(shots, 'data-link.png'), fullPage: true });
  // Give anything eager (the worker, the service worker, a prefetch) time to fire.
  await page.waitForTimeout(1500);
  assert.deepEqual(files.requests, [], 'the data server saw no request before consent');
  assert.deepEqual(requests.filter((request) => request.startsWith(files.origin)), []);

  await page.getByTestId('load-linked-data').click();
  const text = await summaryText(page, '6 traces');
  assert.match(text, /6 traces, 2 questions, 2 classes, format canonical; 8 lines read, 2 skipped\./);
  assert.match(text, /line 6: not JSON/);
  assert.deepEqual(files.requests, ['GET /small.jsonl.gz']);
  await page.getByTestId('linked-data-loaded').waitFor();
  // The download is what `tracesift filter` writes for the same (gzipped) file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-kept').click()]);
  const expected = execFileSync(cli, ['filter', path.join(dataDir, 'small.jsonl.gz'), '--metric', 'msp', '--top', '2',
    '--scope', 'global', '--export', 'canonical'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8');
  assert.ok(expected.length > 0);
  assert.equal(fs.readFileSync(await download.path(), 'utf8'), expected);
  // The link keeps its data in the address bar, so it can be passed on.
  assert.ok(page.url().endsWith(`&data=${url}`), page.url());
  // A scoring setting scores the kept copy again: no second download.
  await page.getByTestId('sim').selectOption('rouge_l');
  await page.waitForTimeout(500);
  await page.waitForFunction(() => document.querySelector('[data-testid=scored-in]'));
  assert.deepEqual(files.requests, ['GET /small.jsonl.gz']);

  // Another link opened in the same tab: offered again, a plain file this time.
  await page.evaluate((next) => { window.location.hash = `#metric=msp&top=1&scope=global&data=${next}`; },
    `${files.origin}/small.jsonl`);
  await page.getByTestId('load-linked-data').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=kept-count]')?.textContent === '1 traces kept.');
  assert.deepEqual(files.requests, ['GET /small.jsonl.gz', 'GET /small.jsonl']);
  assert.deepEqual(errors, []);
  await context.close();
  await files.close();
});

test('a data link that cannot be loaded says why in plain words', async () => {
  const open = await serveFiles(dataDir, { cors: true });
  const closed = await serveFiles(dataDir, { cors: false });
  const port = await deadPort();
  const cases = [
    [`${open.origin}/missing.jsonl`, /has no file at this address \(HTTP 404/],
    [`${closed.origin}/small.jsonl`, /answered, but it does not let other websites read this file/],
    [`http://127.0.0.1:${port}/small.jsonl`, new RegExp(`Could not reach 127\\.0\\.0\\.1:${port}: nothing answered there`)],
  ];
  for (const [url, message] of cases) {
    const { context, page, errors } = await openPage(`${app.origin}/#data=${url}`);
    await page.getByTestId('load-linked-data').click();
    await page.waitForSelector('.status.error', { timeout: 30_000 });
    const shown = await page.locator('.status.error').textContent();
    assert.match(shown, message, url);
    assert.equal(await page.getByTestId('summary').count(), 0, 'nothing was scored');
    assert.equal(await page.getByTestId('load-linked-data').textContent(), 'Try again');
    console.log(`# ${url}: ${shown}`);
    assert.deepEqual(errors, [], `no console error for ${url}`);
    await context.close();
  }
  // A link to something that is not a web address is refused before anything happens.
  const { context, page, errors } = await openPage(`${app.origin}/#data=javascript:alert(1)`);
  assert.match(await page.getByTestId('linked-data').textContent(), /is not an http or https address/);
  assert.equal(await page.getByTestId('load-linked-data').count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
  await open.close();
  await closed.close();
});
