// End-to-end tests of what a workshop needs: the app works with the network off after one
// visit (service worker).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serveDist, CHROMIUM_ARGS } from './serve.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const dist = process.env.TRACESIFT_DIST ?? path.join(root, 'dist');
const shots = process.env.TRACESIFT_SCREENSHOTS ?? path.join(root, 'target/screenshots');

/// What the demo holds (xtask/src/demo.rs, DEMO_OPTIONS).
const DEMO_SUMMARY = /1800 traces, 200 questions, 3 classes, format canonical/;

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
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
