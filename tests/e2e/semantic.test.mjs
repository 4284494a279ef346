// `semantic` similarity in the tab: the texts are embedded by all-MiniLM-L6-v2 in the
// scoring worker and its helpers (or on WebGPU), from the app's own origin, while the
// results by the previous similarity stay on the screen; the download equals the CLI's; a
// cancel goes back.
// Against the release build in $TRACESIFT_DIST and the release CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { serveDist, CHROMIUM_ARGS, WEBGPU_ARGS } from './serve.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const dist = process.env.TRACESIFT_DIST ?? path.join(root, 'dist');
const cli = process.env.TRACESIFT_CLI ?? path.join(root, 'target/release/tracesift');
const modelDir = process.env.TRACESIFT_MODEL_DIR ?? path.join(root, 'target/model/all-MiniLM-L6-v2');
const shots = process.env.TRACESIFT_SCREENSHOTS ?? path.join(root, 'target/screenshots');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tracesift-semantic-'));

let server, origin, browser;

before(async () => {
  server = await serveDist(dist);
  origin = server.origin;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/// The texts sentence-transformers embedded for tests/data/embed (empty, unicode, longer
/// than the model reads), as questions of four traces, `copies` times over.
function textsFile(name, copies = 1) {
  const reference = JSON.parse(fs.readFileSync(path.join(root, 'tests/data/embed/sentence-transformers.json'), 'utf8'));
  const lines = [];
  for (let copy = 0; copy < copies; copy++) {
    reference.texts.forEach((text, idx) => {
      lines.push(JSON.stringify({
        question_id: `c${copy}-q${Math.floor(idx / 4)}`,
        trace_id: `c${copy}-t${idx}`,
        text: text.text,
        answer: idx % 3 === 0 ? 'up' : 'down',
        logprobs: [-0.1 * (1 + (idx % 5)), -0.2],
      }));
    });
  }
  const file = path.join(work, name);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function openApp(inBrowser = browser, fragment = '#metric=cocoa_ppl&keep=0.5&scope=global&sim=answer&export=canonical', at = origin) {
  const context = await inBrowser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  const errors = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(`${at}/${fragment}`);
  await page.getByTestId('file-input').waitFor();
  return { context, page, requests, errors };
}

async function waitForSummary(page, text) {
  await page.waitForFunction(
    (expected) => document.querySelector('[data-testid=summary]')?.textContent.includes(expected),
    text, { timeout: 60_000 });
}

function parseLines(text) {
  return text.trim().split('\n').map((line) => JSON.parse(line));
}

/// The page's kept traces (canonical download) against the CLI's `filter --sim semantic`:
/// the same traces in the same order, each embedding dimension and score within `tolerance`.
async function assertDownloadMatchesCli(page, file, tolerance) {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByTestId('download-kept').click(),
  ]);
  const ours = parseLines(fs.readFileSync(await download.path(), 'utf8'));
  const theirs = parseLines(execFileSync(cli, [
    'filter', file, '--metric', 'cocoa_ppl', '--keep', '0.5', '--scope', 'global',
    '--sim', 'semantic', '--model-dir', modelDir, '--backend', 'cpu', '--export', 'canonical',
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  assert.equal(ours.length, 6);
  assert.deepEqual(ours.map((line) => line.trace_id), theirs.map((line) => line.trace_id));
  for (const [a, b] of ours.map((line, idx) => [line, theirs[idx]])) {
    assert.equal(a.embedding.length, 384);
    const worst = Math.max(...a.embedding.map((value, dim) => Math.abs(value - b.embedding[dim])));
    assert.ok(worst <= tolerance.embedding, `${a.trace_id}: embedding off by ${worst}`);
    for (const [name, value] of Object.entries(b.scores)) {
      if (typeof value !== 'number') {
        assert.deepEqual(a.scores[name], value, `${a.trace_id} ${name}`);
      } else {
        assert.ok(Math.abs(a.scores[name] - value) <= tolerance.scores, `${a.trace_id} ${name}: ${a.scores[name]} vs the CLI's ${value}`);
      }
    }
  }
}

test('semantic similarity embeds the texts in the tab, and its download equals the CLI\'s', async () => {
  const file = textsFile('texts.jsonl');
  const { context, page, requests, errors } = await openApp();
  await page.getByTestId('file-input').setInputFiles(file);
  await waitForSummary(page, '12 traces');
  await page.getByTestId('sim').selectOption('semantic');
  // While the model loads and the texts are embedded, the answer-similarity results stay.
  await page.getByTestId('embedding').waitFor({ timeout: 30_000 });
  assert.ok(await page.getByTestId('summary').isVisible(), 'the previous results stay on the screen');
  await page.screenshot({ path: path.join(shots, 'semantic-embedding.png') });
  await page.getByTestId('scored-in').waitFor({ timeout: 300_000 });
  // The same traces kept, in the same order, with the same scores and embeddings (to the
  // float rounding of wasm's arithmetic against the native build's).
  await assertDownloadMatchesCli(page, file, { embedding: 1e-5, scores: 1e-6 });
  // The model is kept in IndexedDB too (where no service worker runs: plain http).
  const kept = await page.evaluate(() => new Promise((resolve, reject) => {
    const opening = indexedDB.open('tracesift-model', 1);
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => {
      const keys = opening.result.transaction('files').objectStore('files').getAllKeys();
      keys.onsuccess = () => resolve(keys.result.map((key) => key.split(' ')[0]).sort());
      keys.onerror = () => reject(keys.error);
    };
  }));
  assert.deepEqual(kept, ['config.json', 'model.safetensors', 'tokenizer.json']);
  // The model came from the app's own origin, and nothing else left it.
  assert.ok(requests.includes(`${origin}/all-MiniLM-L6-v2/model.safetensors`), 'the model is loaded from the app\'s origin');
  const foreign = requests.filter((url) => !url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:'));
  assert.deepEqual(foreign, []);
  assert.match(page.url(), /sim=semantic/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('on WebGPU the encoder runs on the GPU, and the download equals the CLI\'s within 1e-4', async () => {
  // backend=gpu in a browser with WebGPU (Chromium's SwiftShader): the WGSL encoder.
  const gpuBrowser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: WEBGPU_ARGS(),
  });
  try {
    const file = textsFile('texts-webgpu.jsonl');
    const { context, page, errors } = await openApp(gpuBrowser,
      '#metric=cocoa_ppl&keep=0.5&scope=global&sim=semantic&backend=gpu&export=canonical');
    await page.getByTestId('file-input').setInputFiles(file);
    // The progress (and its Cancel) shows from the start, while the model loads.
    await page.getByTestId('embedding').waitFor({ timeout: 60_000 });
    assert.equal(await page.getByTestId('embedding').getAttribute('data-total'), '12');
    await page.getByTestId('scored-in').waitFor({ timeout: 300_000 });
    await waitForSummary(page, '12 traces');
    assert.match(await page.getByTestId('backend').textContent(), /^WebGPU \(.+\)$/);
    await assertDownloadMatchesCli(page, file, { embedding: 1e-4, scores: 1e-4 });
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await gpuBrowser.close();
  }
});

test('served to a room over plain http, the model is checked without SubtleCrypto, and a damaged kept copy is fetched again', async () => {
  // A LAN name for this machine: not localhost, so the page is no secure context (no
  // SubtleCrypto, no service worker), as an app served to a workshop's room over http.
  const lanBrowser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP lan.test 127.0.0.1'],
  });
  try {
    const lanOrigin = origin.replace('127.0.0.1', 'lan.test');
    const file = textsFile('texts-lan.jsonl');
    const { context, page, requests, errors } = await openApp(lanBrowser, undefined, lanOrigin);
    assert.equal(await page.evaluate(() => isSecureContext), false);
    // An earlier visit kept a config.json that is not the pinned one, under the pinned
    // file's key: the real one with a space added, which reads as the same config, so only
    // its sha256 tells it apart. The other files were never kept.
    const pins = JSON.parse(fs.readFileSync(path.join(root, 'crates/embed/model.json'), 'utf8')).files;
    const config = fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8');
    await page.evaluate(({ key, damaged }) => new Promise((resolve, reject) => {
      const opening = indexedDB.open('tracesift-model', 1);
      opening.onupgradeneeded = () => opening.result.createObjectStore('files');
      opening.onerror = () => reject(opening.error);
      opening.onsuccess = () => {
        const writing = opening.result.transaction('files', 'readwrite');
        writing.objectStore('files').put(new TextEncoder().encode(damaged).buffer, key);
        writing.oncomplete = () => { opening.result.close(); resolve(); };
        writing.onerror = () => reject(writing.error);
      };
    }), { key: `config.json ${pins['config.json']}`, damaged: `${config} ` });
    await page.getByTestId('file-input').setInputFiles(file);
    await waitForSummary(page, '12 traces');
    await page.getByTestId('sim').selectOption('semantic');
    await page.getByTestId('scored-in').waitFor({ timeout: 300_000 });
    await assertDownloadMatchesCli(page, file, { embedding: 1e-5, scores: 1e-6 });
    assert.ok(requests.includes(`${lanOrigin}/all-MiniLM-L6-v2/config.json`), 'the damaged copy is fetched again');
    // The good file is kept in its place.
    const kept = await page.evaluate((key) => new Promise((resolve, reject) => {
      const opening = indexedDB.open('tracesift-model', 1);
      opening.onerror = () => reject(opening.error);
      opening.onsuccess = () => {
        const reading = opening.result.transaction('files').objectStore('files').get(key);
        reading.onsuccess = () => resolve(new TextDecoder().decode(reading.result));
        reading.onerror = () => reject(reading.error);
      };
    }), `config.json ${pins['config.json']}`);
    assert.equal(kept, config);
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await lanBrowser.close();
  }
});

test('cancelling the embedding goes back to the previous similarity and its results', async () => {
  const file = textsFile('many-texts.jsonl', 40);
  const { context, page, errors } = await openApp();
  await page.getByTestId('file-input').setInputFiles(file);
  await waitForSummary(page, '480 traces');
  await page.getByTestId('sim').selectOption('rouge_l');
  await page.getByTestId('scored-in').waitFor({ timeout: 60_000 });
  await page.getByTestId('sim').selectOption('semantic');
  // Some texts done, and the page says how long the rest will take.
  await page.waitForFunction(
    () => Number(document.querySelector('[data-testid=embedding]')?.dataset.done ?? 0) > 0,
    null, { timeout: 120_000 });
  await page.waitForFunction(
    () => /left/.test(document.querySelector('[data-testid=embedding]')?.textContent ?? ''),
    null, { timeout: 120_000 });
  assert.equal(await page.getByTestId('embedding').getAttribute('data-total'), '480');
  await page.getByTestId('cancel-embedding').click();
  await page.getByTestId('scored-in').waitFor({ timeout: 60_000 });
  assert.equal(await page.getByTestId('sim').inputValue(), 'rouge_l');
  assert.match(page.url(), /sim=rouge_l/);
  await waitForSummary(page, '480 traces');
  assert.equal(await page.getByTestId('embedding').count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
});
