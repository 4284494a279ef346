// Times the linked views on a scored file in headless Chromium: dragging the cut-off,
// clicking a histogram bar, a class, brushing the scatter. For each it prints how long an
// update takes from the input event to the frame that shows it (median and worst over the
// interaction's events) and the main thread's longest task meanwhile (the charts redraw in
// tasks of their own, after that frame).
// Usage: node tests/e2e/bench-interaction.mjs FILE   (run by `cargo xtask bench`)
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serveDist, CHROMIUM_ARGS } from './serve.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const dist = process.env.TRACESIFT_DIST ?? path.join(root, 'dist');
const file = process.argv[2];
if (!file) {
  console.error('usage: node tests/e2e/bench-interaction.mjs FILE');
  process.exit(2);
}

const server = await serveDist(dist);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.__longTasks.push([entry.startTime, entry.duration]);
    }).observe({ type: 'longtask', buffered: true });
    // Each input event of an interaction: the time from the event to the frame after it.
    window.__updates = [];
    window.__measuring = false;
    for (const type of ['pointermove', 'pointerup', 'click']) {
      document.addEventListener(type, (event) => {
        if (!window.__measuring || (type === 'pointermove' && event.buttons === 0)) return;
        const started = performance.now();
        requestAnimationFrame(() => setTimeout(() => window.__updates.push(performance.now() - started), 0));
      }, true);
    }
  });
  await page.goto(`${server.origin}/#metric=cocoa_ppl&keep=0.1`);
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId('scored-in').waitFor({ timeout: 30 * 60_000 });
  const summary = (await page.getByTestId('summary').textContent()).split(';')[0];
  const allDrawn = () => page.waitForFunction(() => [...document.querySelectorAll('canvas[data-drawn]')]
    .every((canvas) => canvas.dataset.drawn === 'true'), null, { timeout: 120_000 });
  await allDrawn();
  await page.waitForTimeout(1500);

  const results = {};
  async function measure(name, act) {
    await page.evaluate(() => { window.__updates = []; window.__measuring = true; });
    const from = await page.evaluate(() => performance.now());
    await act();
    await page.waitForTimeout(1500);
    await allDrawn();
    const { updates, tasks } = await page.evaluate((from) => {
      window.__measuring = false;
      return { updates: window.__updates, tasks: window.__longTasks.filter(([start]) => start >= from) };
    }, from);
    const sorted = [...updates].sort((a, b) => a - b);
    results[name] = {
      events: updates.length,
      median_update_ms: sorted.length ? Math.round(sorted[Math.floor(sorted.length / 2)]) : null,
      worst_update_ms: sorted.length ? Math.round(sorted[sorted.length - 1]) : null,
      longest_task_ms: tasks.length ? Math.round(Math.max(...tasks.map(([, duration]) => duration))) : 0,
    };
  }

  const perClass = page.getByTestId('chart-per-class');
  await page.waitForFunction(() => document.querySelector('[data-testid=chart-per-class]')?.dataset.cutoffs);
  const place = async (chart) => {
    const box = await chart.boundingBox();
    return { box, scale: Math.min(box.width / 900, box.height / 360) };
  };
  {
    const { box, scale } = await place(perClass);
    const [, linePx] = (await perClass.getAttribute('data-cutoffs')).split(',')[0].split(':').map(Number);
    const x = box.x + linePx * scale;
    const y = box.y + 180 * scale;
    await measure('drag_cutoff', async () => {
      await page.mouse.move(x, y);
      await page.mouse.down();
      await page.mouse.move(x + 60 * scale, y, { steps: 10 });
      await page.mouse.up();
    });
    await measure('click_histogram_bar', () => page.mouse.click(x + 30 * scale, y));
  }
  await measure('click_class', () => page.getByTestId('class-counts').locator('button').first().click());
  await measure('show_all', () => page.getByTestId('clear-table-filter').click());
  {
    const scatter = page.getByTestId('chart-scatter');
    await scatter.scrollIntoViewIfNeeded();
    const { box, scale } = await place(scatter);
    await measure('brush_scatter', async () => {
      await page.mouse.move(box.x + 250 * scale, box.y + 90 * scale);
      await page.mouse.down();
      await page.mouse.move(box.x + 520 * scale, box.y + 250 * scale, { steps: 10 });
      await page.mouse.up();
    });
  }
  const rows = await page.getByTestId('traces-table').getAttribute('data-rows');
  console.log(JSON.stringify({ input: file, summary, brushed_rows: Number(rows), interactions: results }));
} finally {
  await browser.close();
  server.close();
}
