// Times the built app in headless Chromium: loads a trace file (or the demo data) the way
// a user does, and prints the app's own scoring time and the main thread's longest task.
// Usage: node tests/e2e/bench-app.mjs [FILE]   (run by `cargo xtask bench`)
import path from 'node:path';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { serveDist, CHROMIUM_ARGS } from './serve.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const dist = process.env.TRACESIFT_DIST ?? path.join(root, 'dist');
const file = process.argv[2];

const server = await serveDist(dist);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  // Record every main-thread task over 50 ms (the Long Tasks API) from the first script on.
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.__longTasks.push([entry.startTime, entry.duration]);
    }).observe({ type: 'longtask', buffered: true });
  });
  await page.goto(server.origin);
  await page.getByTestId('file-input').waitFor();
  // Playwright's own scripts run in the page's main thread too: the first call of each kind
  // compiles its injected script (a task of 40–80 ms), and waiting for an element to be
  // visible lays the page out. Both happen here, before the measured span; inside it the
  // bench only polls with querySelector and reads attributes, which lay nothing out.
  await page.waitForFunction(() => true);
  await page.evaluate(() => 0);
  const started = Date.now();
  // Tasks before this instant belong to loading the page, not to the file.
  const fileGivenAt = await page.evaluate(() => performance.now());
  if (file) {
    await page.getByTestId('file-input').setInputFiles(file);
  } else {
    await page.getByTestId('demo').click();
  }
  await page.waitForFunction(() => document.querySelector('[data-testid="scored-in"]') !== null, null,
    { polling: 100, timeout: 30 * 60_000 });
  const wallMs = Date.now() - started;
  const [scoredMs, summary] = await page.evaluate(() => [
    Number(document.querySelector('[data-testid="scored-in"]').dataset.millis),
    document.querySelector('[data-testid="summary"]').textContent.split(';')[0],
  ]);
  // The page draws its charts after the summary: wait for them, so their tasks count.
  await page.waitForFunction(() => [...document.querySelectorAll('canvas[data-drawn]')]
    .every((canvas) => canvas.dataset.drawn === 'true'), null, { polling: 100, timeout: 60_000 }).catch(() => {});
  // The worker then compares the metrics (with gold labels, the ranking's bootstrap) once
  // the page is idle; its section renders on the main thread too, so its task counts.
  const comparisonMs = await page.waitForFunction(
    () => document.querySelector('[data-testid="signal-fit"]') !== null, null,
    { polling: 100, timeout: 10 * 60_000 },
  ).then(() => Date.now() - started - wallMs, () => null);
  await page.waitForTimeout(1000);
  const longTasks = await page.evaluate(() => window.__longTasks);
  // What the longest task did: the page's marks (src/timeline.rs) inside it.
  const marks = await page.evaluate(() => performance.getEntriesByType('mark')
    .filter((mark) => mark.name.startsWith('page: ')).map((mark) => [mark.startTime, mark.name]));
  const longest = (tasks) => (tasks.length ? Math.round(Math.max(...tasks.map(([, duration]) => duration))) : 0);
  const loading = longTasks.filter(([start]) => start < fileGivenAt);
  const scoring = longTasks.filter(([start]) => start >= fileGivenAt);
  const worst = scoring.reduce((worst, task) => (!worst || task[1] > worst[1] ? task : worst), null);
  const worstDid = worst
    ? [...new Set(marks.filter(([at]) => at >= worst[0] && at <= worst[0] + worst[1]).map(([, name]) => name.slice(6)))]
    : [];
  // A task of the browser's own (a frame's style, layout and paint) shows what the page
  // changed in the task before it.
  const before = worst && worstDid.length === 0 ? marks.filter(([at]) => at < worst[0]).pop() : null;
  if (before) worstDid.push(`the frame after: ${before[1].slice(6)}`);
  const bytes = file ? fs.statSync(file).size : null;
  console.log(JSON.stringify({
    input: file ?? 'demo data',
    summary,
    worker_scoring_ms: Math.round(scoredMs),
    wall_ms_to_summary: wallMs,
    mb_per_s: bytes ? Number((bytes / 1e6 / (scoredMs / 1000)).toFixed(1)) : null,
    // From the summary to "Which signal fits": the idle wait, the worker's ranking
    // (bootstrap) and agreement, and the message back.
    comparison_ms_after_summary: comparisonMs,
    longest_main_thread_task_ms: longest(scoring),
    main_thread_tasks_over_50ms: scoring.length,
    // Empty when the task was the browser's own (a frame's layout and paint).
    longest_task_did: worstDid.join('; '),
    longest_task_loading_the_page_ms: longest(loading),
  }));
} finally {
  await browser.close();
  server.close();
}
