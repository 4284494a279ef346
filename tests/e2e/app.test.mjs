// End-to-end tests of the app in Debian's headless Chromium (playwright-core, no browser
// download), against the release build in $TRACESIFT_DIST, compared with the release CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { serveDist, CHROMIUM_ARGS, WEBGPU_ARGS } from './serve.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const dist = process.env.TRACESIFT_DIST ?? path.join(root, 'dist');
const cli = process.env.TRACESIFT_CLI ?? path.join(root, 'target/release/tracesift');
const shots = process.env.TRACESIFT_SCREENSHOTS ?? path.join(root, 'target/screenshots');
const fixture = (name) => path.join(root, 'tests/data', name);

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
});

/// A page that records every request and every console error or page error.
async function openApp(fragment = '', inBrowser = browser) {
  const context = await inBrowser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  const errors = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(`${origin}/${fragment}`);
  await page.getByTestId('file-input').waitFor();
  return { context, page, requests, errors };
}

function assertOnlyOwnOrigin(requests) {
  const foreign = requests.filter((url) => !url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:'));
  assert.deepEqual(foreign, [], 'every request stays on the app\'s own origin');
}

async function summaryText(page, expected) {
  const summary = page.getByTestId('summary');
  await summary.waitFor({ timeout: 60_000 });
  await page.waitForFunction(
    (text) => document.querySelector('[data-testid=summary]')?.textContent.includes(text),
    expected, { timeout: 60_000 });
  return summary.textContent();
}

test('a dropped file is scored in the worker and summarised', async () => {
  const { context, page, requests, errors } = await openApp();
  assert.equal(await page.getByTestId('backend').textContent(), 'CPU');
  await page.getByTestId('file-input').setInputFiles(fixture('small.jsonl'));
  const text = await summaryText(page, '6 traces');
  assert.match(text, /6 traces, 2 questions, 2 classes, format canonical; 8 lines read, 2 skipped\./);
  assert.match(text, /line 6: not JSON/);
  assert.match(text, /line 8: `tokens` has 1 entries but `logprobs` has 0/);
  await page.screenshot({ path: path.join(shots, 'summary.png'), fullPage: true });
  // Editing the fragment by hand re-filters: global top 1 keeps one trace.
  await page.evaluate(() => { window.location.hash = '#metric=msp&top=1&scope=global'; });
  await page.waitForFunction(() => document.querySelector('[data-testid=kept-count]')?.textContent === '1 traces kept.');
  assert.equal(await page.getByTestId('metric').inputValue(), 'msp');
  assertOnlyOwnOrigin(requests);
  assert.deepEqual(errors, []);
  await context.close();
});

test('settings from the URL give the same download as tracesift filter', async () => {
  const cases = [
    ['#metric=cocoa_ppl&keep=0.5&scope=per_class&candidates=all&sim=answer&export=canonical',
      ['--metric', 'cocoa_ppl', '--keep', '0.5', '--scope', 'per_class', '--candidates', 'all', '--sim', 'answer', '--export', 'canonical']],
    // One of the two kept traces has no prompt: written only when asked for.
    ['#metric=msp&top=2&scope=global&sim=rouge_l&export=openai&allow_empty_prompt=true',
      ['--metric', 'msp', '--top', '2', '--scope', 'global', '--sim', 'rouge_l', '--export', 'openai', '--allow-empty-prompt']],
  ];
  for (const [fragment, flags] of cases) {
    const { context, page, requests, errors } = await openApp(fragment);
    await page.getByTestId('file-input').setInputFiles(fixture('small.jsonl'));
    await summaryText(page, '6 traces');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('download-kept').click(),
    ]);
    const downloaded = fs.readFileSync(await download.path());
    const expected = execFileSync(cli, ['filter', fixture('small.jsonl'), ...flags], { stdio: ['ignore', 'pipe', 'ignore'] });
    assert.ok(expected.length > 0);
    assert.equal(downloaded.toString('utf8'), expected.toString('utf8'), `download for ${fragment}`);
    // The fragment is kept (normalised) in the address bar, so the link reproduces the view.
    assert.match(page.url(), /#metric=/);
    assertOnlyOwnOrigin(requests);
    assert.deepEqual(errors, []);
    await context.close();
  }
});

test('a scoring setting changed on the page scores again: the download follows it', async () => {
  const { context, page, errors } = await openApp('#metric=cocoa_ppl&keep=0.5&scope=global&sim=answer&export=canonical');
  await page.getByTestId('file-input').setInputFiles(fixture('small.jsonl'));
  await summaryText(page, '6 traces');
  const cli_download = (sim) => execFileSync(cli, ['filter', fixture('small.jsonl'), '--metric', 'cocoa_ppl', '--keep', '0.5',
    '--scope', 'global', '--sim', sim, '--export', 'canonical'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const [byAnswer, byRouge] = [cli_download('answer'), cli_download('rouge_l')];
  assert.notEqual(byAnswer, byRouge, 'the two similarities give different downloads');
  const download = async () => {
    const [file] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-kept').click()]);
    return fs.readFileSync(await file.path(), 'utf8');
  };
  assert.equal(await download(), byAnswer);
  await page.getByTestId('sim').selectOption('rouge_l');
  // The new run is quick, but not instant: ask until its results are the ones shown.
  let downloaded = await download();
  for (let tries = 0; downloaded !== byRouge && tries < 40; tries++) {
    await page.waitForTimeout(250);
    downloaded = await download();
  }
  assert.equal(downloaded, byRouge);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the request file gives the downloads their prompts, as tracesift filter --requests', async () => {
  const traces = fixture('formats/openai_batch.jsonl');
  const requestsFile = fixture('requests/openai_batch_input.jsonl');
  const { context, page, requests, errors } = await openApp('#metric=ppl&keep=1&scope=global&export=sharegpt');
  await page.getByTestId('file-input').setInputFiles(traces);
  await summaryText(page, '3 traces');
  // Without the requests the SFT download is refused, and the page says how to go on.
  await page.getByTestId('download-kept').click();
  await page.waitForFunction(() => document.querySelector('.notice')?.textContent.includes('refusing the sharegpt export'));
  assert.match(await page.locator('.notice').textContent(), /Requests \(optional\)/);
  // With them the traces are scored again and the download equals the CLI's.
  await page.getByTestId('requests-input').setInputFiles(requestsFile);
  await page.getByTestId('requests-summary').waitFor({ timeout: 60_000 });
  assert.match(await page.getByTestId('requests-summary').textContent(), /4 requests; joined by id/);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByTestId('download-kept').click(),
  ]);
  const downloaded = fs.readFileSync(await download.path(), 'utf8');
  const expected = execFileSync(cli, ['filter', traces, '--requests', requestsFile, '--metric', 'ppl', '--keep', '1',
    '--scope', 'global', '--export', 'sharegpt'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8');
  assert.match(expected, /"from":"system"/);
  assert.equal(downloaded, expected);
  assertOnlyOwnOrigin(requests);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a saved stream is assembled in the worker, plain or gzipped, as the CLI does', async () => {
  // n = 2 choices interleaved in one SSE body: their spans overlap, so the gzip read-back
  // must keep both ranges open at once.
  const sse = fixture('formats/openai_chat_stream_n2.sse');
  const gzipped = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tracesift-')), 'stream.sse.gz');
  fs.writeFileSync(gzipped, zlib.gzipSync(fs.readFileSync(sse)));
  const flags = ['--metric', 'msp', '--keep', '1', '--scope', 'global', '--export', 'canonical'];
  const expected = execFileSync(cli, ['filter', sse, ...flags], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8');
  assert.equal(expected.trim().split('\n').length, 2);
  for (const file of [sse, gzipped]) {
    const { context, page, requests, errors } = await openApp('#metric=msp&keep=1&scope=global&export=canonical');
    await page.getByTestId('file-input').setInputFiles(file);
    const text = await summaryText(page, '2 traces');
    assert.match(text, /2 traces, 1 questions, 2 classes, format openai; 14 lines read, 0 skipped\./);
    assert.match(await page.getByTestId('import-notes').textContent(), /stream chunks assembled into whole generations/);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('download-kept').click(),
    ]);
    assert.equal(fs.readFileSync(await download.path()).toString('utf8'), expected, `download of ${path.basename(file)}`);
    assertOnlyOwnOrigin(requests);
    assert.deepEqual(errors, []);
    await context.close();
  }
});

test('the demo data loads, scores and reports its timing', async () => {
  const { context, page, requests, errors } = await openApp();
  await page.getByTestId('demo').click();
  const text = await summaryText(page, '1800 traces');
  assert.match(text, /1800 traces, 200 questions, 3 classes, format canonical/);
  const millis = Number(await page.getByTestId('scored-in').getAttribute('data-millis'));
  console.log(`# demo data (1800 traces, 19 MB uncompressed) scored in the worker in ${millis.toFixed(0)} ms`);
  const counts = await page.getByTestId('class-counts').textContent();
  assert.match(counts, /down/);
  await page.screenshot({ path: path.join(shots, 'demo.png'), fullPage: true });
  assertOnlyOwnOrigin(requests);
  assert.deepEqual(errors, []);
  await context.close();
});

test('with gold labels the metrics are ranked, and "use the best" filters by the best', async () => {
  const { context, page, errors } = await openApp();
  await page.getByTestId('demo').click();
  await summaryText(page, '1800 traces');
  const ranking = page.getByTestId('ranking-table');
  await ranking.waitFor({ timeout: 60_000 });
  const rows = await ranking.locator('tbody tr').allTextContents();
  assert.ok(rows.length >= 19, `every metric ranked: ${rows.length} rows`);
  assert.equal(await page.getByTestId('agreement-table').count(), 1, 'the agreement matrix is shown');
  const button = page.getByTestId('use-best');
  const best = (await button.textContent()).replace('Use the best: ', '').trim();
  assert.ok(rows[0].startsWith(best), `the first row is the best: ${rows[0]} vs ${best}`);
  if (await page.getByTestId('metric').inputValue() !== best) {
    await button.click();
  }
  await page.waitForFunction((name) => window.location.hash.includes(`metric=${name}`), best);
  assert.equal(await page.getByTestId('metric').inputValue(), best);
  assert.ok(await button.isDisabled());
  await page.screenshot({ path: path.join(shots, 'ranking.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('files it cannot read get a clear message, not a crash', async () => {
  const { context, page, errors } = await openApp();
  await page.getByTestId('file-input').setInputFiles({
    name: 'paper.pdf', mimeType: 'application/pdf',
    buffer: Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n', 'latin1'),
  });
  const text = await summaryText(page, '0 traces');
  assert.match(text, /line 1: not JSON: the line starts with `%PDF-1\.7`/);
  await page.getByTestId('file-input').setInputFiles({ name: 'empty.jsonl', mimeType: 'application/json', buffer: Buffer.alloc(0) });
  assert.match(await summaryText(page, 'the file is empty'), /0 traces/);
  await page.getByTestId('file-input').setInputFiles({
    name: 'other.json', mimeType: 'application/json', buffer: Buffer.from('{"hello": "world"}\n'),
  });
  assert.match(await summaryText(page, 'not a trace in any known format'), /0 traces/);
  await page.screenshot({ path: path.join(shots, 'bad-file.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('traces can be sorted and opened, tokens coloured by log-prob', async () => {
  const { context, page, errors } = await openApp();
  await page.getByTestId('demo').click();
  await summaryText(page, '1800 traces');
  const table = page.getByTestId('traces-table');
  // Virtualised: all 1,800 rows are in the table, a screenful of them in the page.
  assert.equal(await table.getAttribute('data-rows'), '1800');
  // A new run's rows render a frame after the rest of its results.
  await table.locator('tbody tr:not(.spacer)').first().waitFor();
  const rendered = await table.locator('tbody tr:not(.spacer)').count();
  assert.ok(rendered > 5 && rendered < 100, `${rendered} rows rendered`);
  // Scrolled to the bottom, the last rows are rendered in view.
  await page.locator('.traces .table-scroll').evaluate((box) => { box.scrollTop = box.scrollHeight; });
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=traces-table] tbody tr:not(.spacer)')]
    .some((row) => row.firstElementChild?.textContent === '1800'));
  const lastRow = page.locator('[data-testid=traces-table] tbody tr:not(.spacer)', { hasText: /^1800/ });
  assert.ok(await lastRow.isVisible());
  await page.locator('.traces .table-scroll').evaluate((box) => { box.scrollTop = 0; });
  // Sort by cocoa_ppl: the first row then has the smallest score.
  // Columns follow the core's metric table: find cocoa_ppl's by its header.
  const headers = await table.locator('thead th').allTextContents();
  const cocoaColumn = headers.findIndex((text) => /^cocoa_ppl/.test(text));
  assert.ok(cocoaColumn > 0, headers.join(' | '));
  await table.locator('th', { hasText: /^cocoa_ppl/ }).click();
  const firstCocoa = Number(await table.locator('tbody tr:not(.spacer)').first().locator('td').nth(cocoaColumn).textContent());
  const secondCocoa = Number(await table.locator('tbody tr:not(.spacer)').nth(1).locator('td').nth(cocoaColumn).textContent());
  assert.ok(firstCocoa <= secondCocoa, `${firstCocoa} <= ${secondCocoa}`);
  const nTokens = Number(await table.locator('tbody tr:not(.spacer)').first().locator('td').nth(5).textContent());
  await table.locator('tbody tr:not(.spacer)').first().click();
  const view = page.getByTestId('trace-view');
  await view.waitFor();
  assert.equal(await view.locator('span.token').count(), nTokens, 'every token of the trace');
  const title = await view.locator('span.token').first().getAttribute('title');
  assert.match(title, /^log-prob -?\d+\.\d{4} \(p = \d\.\d{3}\)/);
  assert.match(await view.textContent(), /Other samples of this question \(8\)/);
  // The demo has gold labels: the paper's table of AUROC and PRR per metric.
  const evalTable = await page.getByTestId('eval-table').textContent();
  for (const metric of ['msp', 'ppl', 'mte', 'inconsistency', 'cocoa_msp', 'cocoa_ppl', 'cocoa_mte',
    'conf_mean', 'conf_tail', 'conf_bottom10', 'conf_lowest', 'self_certainty', 'answer_entropy',
    'eigv', 'eccentricity', 'kle', 'semantic_density', 'sentence_sar', 'combo']) {
    assert.match(evalTable, new RegExp(metric));
  }
  await page.screenshot({ path: path.join(shots, 'trace-view.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('the charts draw and download as PNG and SVG', async () => {
  const { context, page, errors } = await openApp();
  await page.getByTestId('demo').click();
  await summaryText(page, '1800 traces');
  for (const id of ['chart-per-class', 'chart-counts', 'chart-scatter', 'chart-selective']) {
    const canvas = page.getByTestId(id);
    await page.waitForFunction((testId) => document.querySelector(`[data-testid=${testId}]`)?.dataset.drawn === 'true', id);
    // Count the pixels that are not background: a drawn chart has thousands.
    const inked = await canvas.evaluate((element) => {
      const { data } = element.getContext('2d').getImageData(0, 0, element.width, element.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 0 && (data[i] < 235 || data[i + 1] < 235 || data[i + 2] < 235)) count += 1;
      }
      return count;
    });
    assert.ok(inked > 2000, `${id} has ${inked} inked pixels`);
  }
  const perClass = page.locator('figure', { has: page.getByTestId('chart-per-class') });
  const [png] = await Promise.all([page.waitForEvent('download'), perClass.getByRole('button', { name: 'PNG' }).click()]);
  const pngBytes = fs.readFileSync(await png.path());
  assert.deepEqual([...pngBytes.subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG file');
  const [svg] = await Promise.all([page.waitForEvent('download'), perClass.getByRole('button', { name: 'SVG' }).click()]);
  const svgText = fs.readFileSync(await svg.path(), 'utf8');
  assert.match(svgText, /^<svg[\s\S]*cocoa_ppl per class[\s\S]*<\/svg>\s*$/);
  await page.screenshot({ path: path.join(shots, 'charts.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('WebGPU and CPU runs download the same kept traces', async () => {
  const gpuBrowser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: WEBGPU_ARGS(),
  });
  // backend=gpu: token sums and ROUGE-L on the GPU where there is one; mte needs top-k.
  const fragment = '#metric=cocoa_mte&keep=0.3&scope=per_class&sim=rouge_l&backend=gpu&export=trl';
  const runs = {};
  try {
    for (const [name, inBrowser] of [['cpu', browser], ['webgpu', gpuBrowser]]) {
      const { context, page, requests, errors } = await openApp(fragment, inBrowser);
      await page.getByTestId('demo').click();
      await summaryText(page, '1800 traces');
      const backend = await page.getByTestId('backend').textContent();
      const downloads = {};
      for (const format of ['trl', 'canonical']) {
        await page.getByTestId('export').selectOption(format);
        const [download] = await Promise.all([
          page.waitForEvent('download'),
          page.getByTestId('download-kept').click(),
        ]);
        downloads[format] = fs.readFileSync(await download.path(), 'utf8');
      }
      const millis = Number(await page.getByTestId('scored-in').getAttribute('data-millis'));
      console.log(`# ${name}: backend "${backend}", demo scored in ${millis.toFixed(0)} ms`);
      assertOnlyOwnOrigin(requests);
      assert.deepEqual(errors, [], `${name}: no console error`);
      runs[name] = { backend, downloads };
      await context.close();
    }
  } finally {
    await gpuBrowser.close();
  }
  // Without an adapter the same setting falls back to the CPU, silently.
  assert.equal(runs.cpu.backend, 'CPU');
  assert.match(runs.webgpu.backend, /^WebGPU \(.+\)$/);
  // Same traces kept, byte for byte, in an export without scores.
  assert.ok(runs.cpu.downloads.trl.split('\n').length > 100);
  assert.equal(runs.webgpu.downloads.trl, runs.cpu.downloads.trl);
  // The canonical export carries the scores: the same lines, numbers within 1e-4 (f32 on
  // the GPU), consistency identical (exact LCS).
  const cpuLines = runs.cpu.downloads.canonical.trim().split('\n').map((line) => JSON.parse(line));
  const gpuLines = runs.webgpu.downloads.canonical.trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(gpuLines.length, cpuLines.length);
  for (const [index, cpuLine] of cpuLines.entries()) {
    const gpuLine = gpuLines[index];
    const { scores: cpuScores, ...cpuRest } = cpuLine;
    const { scores: gpuScores, ...gpuRest } = gpuLine;
    assert.deepEqual(gpuRest, cpuRest);
    assert.equal(gpuScores.consistency, cpuScores.consistency);
    for (const [key, value] of Object.entries(cpuScores)) {
      if (typeof value === 'number') {
        assert.ok(Math.abs(gpuScores[key] - value) <= 1e-4 * Math.max(Math.abs(value), 1e-3),
          `${cpuLine.trace_id} ${key}: ${gpuScores[key]} vs ${value}`);
      } else {
        assert.deepEqual(gpuScores[key], value, key);
      }
    }
  }
});

/// A plain JSONL file over the 64 MiB above which the worker splits plain JSONL among
/// helper workers: lines with made-up trace ids, a broken line (line 2001), questions
/// spanning parts. Returns its folder, path, bytes and lines.
function writeLargeFile() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracesift-e2e-'));
  const file = path.join(dir, 'large.jsonl');
  const logprobs = Array.from({ length: 1500 }, (_, i) => `-0.${(i * 7919) % 1000 + 1}`).join(',');
  const fd = fs.openSync(file, 'w');
  let written = 0;
  let lines = 0;
  while (written < 70 * 1024 * 1024) {
    const line = lines === 2000
      ? '{"question_id": broken\n'
      : `{"question_id":"q${Math.floor(lines / 9)}",${lines % 4 ? `"trace_id":"t${lines}",` : ''}"answer":"${['up', 'down', 'none'][lines % 3]}","label":"up","logprobs":[${logprobs},-${lines % 13}.5]}\n`;
    fs.writeSync(fd, line);
    written += line.length;
    lines += 1;
  }
  fs.closeSync(fd);
  return { dir, file, written, lines };
}

test('a large file is scored by helper workers and gives what the CLI gives', async () => {
  const { dir, file, written, lines } = writeLargeFile();
  const { context, page, requests, errors } = await openApp('#metric=cocoa_ppl&keep=0.2&export=canonical');
  await page.getByTestId('file-input').setInputFiles(file);
  const text = await summaryText(page, `${lines - 1} traces`);
  assert.match(text, new RegExp(`${lines} lines read, 1 skipped`));
  assert.match(text, /line 2001: invalid JSON in field `question_id`: expected a value, found `b` \(column 17\)/);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByTestId('download-kept').click(),
  ]);
  const downloaded = fs.readFileSync(await download.path(), 'utf8');
  const expected = execFileSync(cli, ['filter', file, '--metric', 'cocoa_ppl', '--keep', '0.2', '--export', 'canonical'],
    { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 }).toString('utf8');
  assert.ok(expected.length > 0);
  assert.ok(downloaded === expected, 'the download equals tracesift filter');
  // The worker and its helpers (one per core but one) all took part.
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const workers = Number(await page.getByTestId('scored-in').getAttribute('data-workers'));
  assert.equal(workers, Math.min(Math.max(cores - 1, 1), 7) + 1);
  console.log(`# ${(written / 1e6).toFixed(0)} MB scored by ${workers} workers`);
  assertOnlyOwnOrigin(requests);
  assert.deepEqual(errors, []);
  await context.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a newer run wins: an earlier run still scoring never replaces what the screen and the downloads show', async () => {
  // The large file's run awaits its helpers; the small file dropped meanwhile is scored
  // at once. The large run must neither replace the small one's results in the worker
  // nor reach the page.
  const { dir, file } = writeLargeFile();
  const { context, page, requests, errors } = await openApp('#metric=cocoa_ppl&keep=0.5&export=canonical');
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId('progress').waitFor({ timeout: 30_000 });
  await page.getByTestId('file-input').setInputFiles(fixture('small.jsonl'));
  await summaryText(page, '6 traces');
  // Time for the large run to have finished, had it gone on.
  await page.waitForTimeout(6000);
  assert.match(await page.getByTestId('summary').textContent(), /^6 traces, 2 questions/);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByTestId('download-kept').click(),
  ]);
  const downloaded = fs.readFileSync(await download.path(), 'utf8');
  const expected = execFileSync(cli, ['filter', fixture('small.jsonl'), '--metric', 'cocoa_ppl', '--keep', '0.5', '--export', 'canonical'],
    { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8');
  assert.ok(expected.length > 0);
  assert.equal(downloaded, expected, 'the download is the newest run\'s');
  assertOnlyOwnOrigin(requests);
  assert.deepEqual(errors, []);
  await context.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('accessibility: axe-core finds no serious or critical violations, and the table works from the keyboard', async () => {
  const { context, page, errors } = await openApp('');
  await page.setViewportSize({ width: 1440, height: 900 });
  const axeSource = path.join(root, 'node_modules/axe-core/axe.min.js');
  const check = async (view) => {
    await page.addScriptTag({ path: axeSource });
    const result = await page.evaluate(async () => axe.run(document, { resultTypes: ['violations'] }));
    const serious = result.violations
      .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
      .map((violation) => `${violation.impact} ${violation.id}: ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`);
    assert.deepEqual(serious, [], `axe-core on ${view}`);
  };
  await check('the empty page');
  await page.getByTestId('demo').click();
  await page.getByTestId('scored-in').waitFor({ timeout: 120_000 });
  await page.waitForFunction(() => [...document.querySelectorAll('canvas[data-drawn]')].every((c) => c.dataset.drawn === 'true'));
  // Sort by a column from the keyboard: focus its header button, press Enter.
  const header = page.locator('[data-testid=traces-table] th.sortable button').nth(1);
  await header.focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('[data-testid=traces-table] th.sortable').nth(1).getAttribute('aria-sort'), 'ascending');
  // Open a trace from the keyboard: a row takes focus and Enter opens it.
  const row = page.locator('[data-testid=traces-table] tbody tr:not(.spacer)').first();
  await row.focus();
  assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'TR');
  const outline = await row.evaluate((element) => getComputedStyle(element).outlineStyle);
  assert.notEqual(outline, 'none', 'a focused row shows its focus');
  await page.keyboard.press('Enter');
  await page.getByTestId('trace-view').waitFor();
  await check('the scored demo with a trace open');
  assert.deepEqual(errors, []);
  await context.close();
});

for (const [width, height] of [[1440, 900], [1280, 720]]) {
  test(`at ${width} × ${height} the per-class chart and the traces table share the first screen, and an opened trace is in view`, async () => {
    const { context, page, errors } = await openApp('');
    await page.setViewportSize({ width, height });
    await page.getByTestId('demo').click();
    await summaryText(page, '1800 traces');
    await page.waitForFunction(() => document.querySelector('[data-testid=chart-per-class]')?.dataset.drawn === 'true');
    // The page itself never scrolls: its panels do.
    const pageScroll = await page.evaluate(() => document.scrollingElement.scrollHeight - window.innerHeight);
    assert.ok(pageScroll <= 0, `the page scrolls by ${pageScroll} px`);
    const inView = async (locator, minimumPx) => {
      const box = await locator.boundingBox();
      assert.ok(box, 'laid out');
      const visible = Math.min(box.y + box.height, height) - Math.max(box.y, 0);
      return visible >= Math.min(minimumPx, box.height);
    };
    assert.ok(await inView(page.getByTestId('chart-per-class'), 200), 'the per-class chart is in view');
    assert.ok(await inView(page.locator('.traces .table-scroll'), 200), 'the traces table is in view');
    assert.ok(await inView(page.getByTestId('download-kept'), 20), 'the download is in view');
    await page.screenshot({ path: path.join(shots, `dashboard-${width}x${height}.png`) });
    await page.locator('[data-testid=traces-table] tbody tr:not(.spacer)').nth(3).click();
    const view = page.getByTestId('trace-view');
    await view.waitFor();
    assert.ok(await inView(view, height - 100), 'the opened trace fills the side of the screen');
    await page.screenshot({ path: path.join(shots, `trace-view-${width}x${height}.png`) });
    // Esc closes it.
    await view.press('Escape');
    await view.waitFor({ state: 'detached' });
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('linked views: dragging the cut-off moves the keep rule and the URL; a class or a bar filters the table', async () => {
  const { context, page, errors } = await openApp('#metric=cocoa_ppl&keep=0.1');
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.getByTestId('demo').click();
  await summaryText(page, '1800 traces');
  const chart = page.getByTestId('chart-per-class');
  await page.waitForFunction(() => document.querySelector('[data-testid=chart-per-class]')?.dataset.cutoffs);
  const keptBefore = await page.getByTestId('kept-count').textContent();
  assert.equal(keptBefore, '174 traces kept.');
  // The first panel's cut-off line, in the page's pixels.
  const [classIdx, linePx] = (await chart.getAttribute('data-cutoffs')).split(',')[0].split(':').map(Number);
  const box = await chart.boundingBox();
  const scale = Math.min(box.width / 900, box.height / 360);
  const x = box.x + linePx * scale;
  const y = box.y + 180 * scale;
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + 80 * scale, y, { steps: 6 });
  await page.mouse.up();
  await page.waitForFunction((before) => document.querySelector('[data-testid=kept-count]')?.textContent !== before, keptBefore);
  const keptAfter = Number((await page.getByTestId('kept-count').textContent()).split(' ')[0]);
  assert.ok(keptAfter > 174, `dragging right keeps more: ${keptAfter}`);
  const keep = Number(new URL(page.url()).hash.match(/keep=([0-9.]+)/)[1]);
  assert.ok(keep > 0.1 && keep <= 1, `the URL's keep moved: ${keep}`);
  // A click on the first panel's plot (away from the line) shows one bar's traces.
  await page.mouse.click(box.x + (linePx + 40) * scale, y);
  const filterText = await page.getByTestId('table-filter').textContent();
  const className = filterText.match(/class (\w+), cocoa_ppl in/)[1];
  const table = page.getByTestId('traces-table');
  const classColumn = (await table.locator('thead th').allTextContents()).findIndex((text) => /^class/.test(text));
  const classes = await table.locator('tbody tr:not(.spacer)').evaluateAll(
    (rows, column) => rows.map((row) => row.children[column].textContent), classColumn);
  assert.ok(classes.length > 0 && classes.every((name) => name === className), `${classes}`);
  assert.match(filterText, new RegExp(`: ${await table.getAttribute('data-rows')} traces`));
  // A class in the counts shows all its traces; "Show all" brings every trace back.
  await page.getByTestId('class-counts').getByRole('button', { name: 'up' }).click();
  assert.match(await page.getByTestId('table-filter').textContent(), /Showing class up: 528 traces/);
  await page.getByTestId('clear-table-filter').click();
  assert.equal(await table.getAttribute('data-rows'), '1800');
  await page.screenshot({ path: path.join(shots, 'linked-views.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('linked views: a rectangle brushed on the scatter selects its traces in the table, and they download', async () => {
  const { context, page, errors } = await openApp('#metric=ppl&keep=0.1&export=canonical');
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.getByTestId('demo').click();
  await summaryText(page, '1800 traces');
  const chart = page.getByTestId('chart-scatter');
  await chart.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelector('[data-testid=chart-scatter]')?.dataset.drawn === 'true');
  const box = await chart.boundingBox();
  const scale = Math.min(box.width / 900, box.height / 360);
  // A rectangle over the middle of the plot, dragged in steps as a hand would.
  const from = [box.x + 250 * scale, box.y + 90 * scale];
  const to = [box.x + 520 * scale, box.y + 250 * scale];
  await page.mouse.move(...from);
  await page.mouse.down();
  await page.mouse.move(...to, { steps: 8 });
  await page.mouse.up();
  const brush = page.getByTestId('scatter-brush');
  await brush.waitFor();
  const [pplLow, pplHigh, consistencyLow, consistencyHigh] = (await brush.getAttribute('data-range')).split(',').map(Number);
  assert.ok(pplLow < pplHigh && consistencyLow < consistencyHigh, `${pplLow}..${pplHigh} × ${consistencyLow}..${consistencyHigh}`);
  assert.match(await page.getByTestId('table-filter').textContent(), /Showing ppl in \[.*\] and consistency in \[.*\]: \d+ traces/);
  const rows = Number(await page.getByTestId('traces-table').getAttribute('data-rows'));
  assert.ok(rows > 0 && rows < 1800, `the brush selects some traces: ${rows}`);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByTestId('export-selection').click(),
  ]);
  assert.equal(download.suggestedFilename(), 'tracesift-selection.jsonl');
  const lines = fs.readFileSync(await download.path(), 'utf8').split('\n').filter(Boolean);
  // The CLI's canonical export of every trace, in file order: the selection is exactly
  // those lines whose ppl and consistency lie in the brush, byte for byte.
  const demo = path.join(dist, 'demo.jsonl.gz');
  const everything = execFileSync(cli, ['filter', demo, '--metric', 'ppl', '--keep', '1', '--scope', 'global',
    '--candidates', 'all', '--export', 'canonical'], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 })
    .toString('utf8').split('\n').filter(Boolean);
  assert.equal(everything.length, 1800);
  const inside = everything.filter((line) => {
    const { ppl, consistency } = JSON.parse(line).scores;
    return ppl !== null && consistency !== null && pplLow <= ppl && ppl <= pplHigh
      && consistencyLow <= consistency && consistency <= consistencyHigh;
  });
  assert.equal(lines.length, rows);
  assert.deepEqual(lines, inside);
  // A click on the plot clears the brush and its selection (the chart may have moved: the
  // table's filter line came and went above it).
  await chart.scrollIntoViewIfNeeded();
  const boxNow = await chart.boundingBox();
  await page.mouse.click(boxNow.x + 300 * scale, boxNow.y + 150 * scale);
  await page.waitForFunction(() => !document.querySelector('[data-testid=scatter-brush]'));
  assert.equal(await page.getByTestId('table-filter').count(), 0);
  await page.screenshot({ path: path.join(shots, 'scatter-brush.png') });
  assert.deepEqual(errors, []);
  await context.close();
});
