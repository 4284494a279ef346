// Times `semantic` similarity in the tab (headless Chromium, the release build): N texts of
// 256 word-pieces are embedded by the scoring worker and its helper workers; prints the
// model's loading time and the milliseconds per text once it is loaded (wall clock over
// all workers, and per worker), the figure to set beside the CLI's and PyTorch's. With
// --webgpu, the same on WebGPU (`backend=gpu`; Chromium's SwiftShader where the machine has
// no GPU Chromium uses): the scoring worker runs the WGSL encoder.
// Usage: node tests/e2e/bench-embedding.mjs [N] [--webgpu]   (run by `cargo xtask bench`; N = 24)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serveDist, CHROMIUM_ARGS, WEBGPU_ARGS } from './serve.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const dist = process.env.TRACESIFT_DIST ?? path.join(root, 'dist');
const webgpu = process.argv.includes('--webgpu');
const count = Number(process.argv.slice(2).find((arg) => !arg.startsWith('--')) ?? 24);

// The same text as crates/embed/examples/speed.rs: long enough to fill 256 word-pieces.
const sentence = 'Knocking down the transcription factor reduces repression of the target '
  + 'gene, so its expression in this cell line should rise; ';
const lines = [];
for (let idx = 0; idx < count; idx++) {
  // Each text differs (a number up front), so none is served from another's work.
  lines.push(JSON.stringify({
    question_id: `q${Math.floor(idx / 4)}`, trace_id: `t${idx}`, answer: 'up',
    text: `Trace ${idx}. ${sentence.repeat(12)}`,
  }));
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tracesift-bench-embedding-'));
const file = path.join(work, 'texts.jsonl');
fs.writeFileSync(file, `${lines.join('\n')}\n`);

const server = await serveDist(dist);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: webgpu ? WEBGPU_ARGS() : CHROMIUM_ARGS,
});
try {
  const page = await browser.newPage();
  await page.goto(`${server.origin}/#sim=answer${webgpu ? '&backend=gpu' : ''}`);
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId('scored-in').waitFor({ timeout: 60_000 });
  const workers = await page.evaluate(() => Math.min(Math.max(navigator.hardwareConcurrency - 1, 1), 7) + 1);
  const started = Date.now();
  await page.getByTestId('sim').selectOption('semantic');
  await page.waitForFunction(
    () => Number(document.querySelector('[data-testid=embedding]')?.dataset.done ?? 0) > 0,
    null, { timeout: 300_000, polling: 20 });
  // The first request done: the model is loaded in every worker by now, or nearly.
  const firstDone = Date.now();
  const doneAtFirst = Number(await page.getByTestId('embedding').getAttribute('data-done'));
  await page.getByTestId('scored-in').waitFor({ timeout: 900_000 });
  const finished = Date.now();
  const perText = (finished - firstDone) / (count - doneAtFirst);
  if (webgpu) {
    const backend = await page.getByTestId('backend').textContent();
    if (!backend.startsWith('WebGPU')) throw new Error(`the run did not use WebGPU: ${backend}`);
    console.log(`embedding in the tab on ${backend} (all-MiniLM-L6-v2, 256 word-pieces, ${count} texts, `
      + `the scoring worker's encoder): model loaded and first ${doneAtFirst} texts in `
      + `${((firstDone - started) / 1e3).toFixed(1)} s, then ${perText.toFixed(0)} ms a text`);
  } else console.log(`embedding in the tab (all-MiniLM-L6-v2, 256 word-pieces, ${count} texts, ${workers} workers: `
    + `the scoring worker and its helpers): model loaded and first ${doneAtFirst} texts in `
    + `${((firstDone - started) / 1e3).toFixed(1)} s, then ${perText.toFixed(0)} ms a text `
    + `(${(perText * workers).toFixed(0)} ms a text per worker)`);
} finally {
  await browser.close();
  server.close();
  fs.rmSync(work, { recursive: true, force: true });
}
