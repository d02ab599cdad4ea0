// The dashboard's speed in headless Chromium, against a running cmpd with its inventory loaded
// (`cmp-bench inventory --dashboard` starts one with 1,000,000 certificates and runs this):
// - the inventory page's first table paint after navigation,
// - a filter change (status) to the new rows painted,
// - the overview's figures and chart painted after navigation,
// each p50 and p95 over TRIES tries; against a reference from the same page and run: the API
// call that fills the table, timed with fetch() in the browser.
//
//   CMP_BASE=http://127.0.0.1:3000 CMP_TOKEN=cmp_... node web/bench/dashboard.mjs
import { chromium } from '@playwright/test';

const base = process.env.CMP_BASE;
const token = process.env.CMP_TOKEN;
const tries = Number(process.env.TRIES ?? 20);
if (!base || !token) {
  console.error('CMP_BASE and CMP_TOKEN are required');
  process.exit(2);
}

// As the inventory page asks (web/src/lib/inventoryQuery.ts).
const INVENTORY_PAGE_SIZE = 50;

// Tries where the browser gave no figure (no first-contentful-paint entry) are left out.
const quantile = (values, q) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
};

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' });
const context = await browser.newContext();
// Signed in as a person who pasted the token; and a watcher that notes, in the page's own clock
// (milliseconds since navigation), the first frame painted after the table has rows and after
// each fetch of the table ends.
await context.addInitScript((t) => {
  sessionStorage.setItem('cmp_token', t);
  window.__marks = [];
  const paintedAt = (name) => requestAnimationFrame(() => window.__marks.push([name, performance.now()]));
  new MutationObserver(() => {
    const table = document.querySelector('table');
    const rows = document.querySelectorAll('table tbody tr').length;
    const busy = table?.getAttribute('aria-busy') === 'true';
    const state = `${rows > 0}:${busy}`;
    if (state !== window.__tableState) {
      window.__tableState = state;
      if (rows > 0 && !busy) paintedAt('rows');
    }
    if (!window.__overview && document.querySelector('.recharts-surface') && document.querySelector('.stat-cards')) {
      window.__overview = true;
      paintedAt('overview');
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-busy'] });
}, token);
const page = await context.newPage();
page.on('pageerror', (e) => console.error('page error:', e.message));

const waitForMark = async (name, after = 0) => {
  const handle = await page.waitForFunction(
    ([n, a]) => window.__marks.find(([m, t]) => m === n && t > a)?.[1],
    [name, after],
    { timeout: 30_000 },
  );
  return handle.jsonValue();
};

const firstContent = [];
const firstPaint = [];
const filterChange = [];
const overview = [];
const apiCall = [];
for (let i = 0; i < tries; i++) {
  await page.goto(`${base}/certificates`);
  firstPaint.push(await waitForMark('rows'));
  // The browser's own first paint of anything (the shell, or a loading state): what is left
  // after it is the page waiting for its script, /me and its data.
  firstContent.push(
    await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN),
  );
  const status = i % 2 === 0 ? 'expiring' : 'valid';
  const started = await page.evaluate(() => performance.now());
  await page.getByRole('search', { name: 'Filter certificates' }).getByLabel('Status').selectOption(status);
  filterChange.push((await waitForMark('rows', started)) - started);
  apiCall.push(
    await page.evaluate(async ([t, s, size]) => {
      const t0 = performance.now();
      const res = await fetch(`/api/v1/certificates?status=${s}&limit=${size}`, {
        headers: { authorization: `Bearer ${t}` },
      });
      await res.json();
      return performance.now() - t0;
    }, [token, status, INVENTORY_PAGE_SIZE]),
  );
  await page.goto(`${base}/`);
  overview.push(await waitForMark('overview'));
}
// The JavaScript a first visit to the overview downloads (gzip, as cmpd serves it).
const fresh = await browser.newContext();
await fresh.addInitScript((t) => sessionStorage.setItem('cmp_token', t), token);
const firstVisit = await fresh.newPage();
await firstVisit.goto(`${base}/`);
await firstVisit.waitForSelector('.recharts-surface', { timeout: 30_000 });
const scriptBytes = await firstVisit.evaluate(() =>
  performance
    .getEntriesByType('resource')
    .filter((entry) => entry.name.endsWith('.js'))
    .reduce((sum, entry) => sum + entry.encodedBodySize, 0),
);
await browser.close();

const row = (name, values, goal) =>
  `| ${name} | ${quantile(values, 0.5).toFixed(0)} ms | ${quantile(values, 0.95).toFixed(0)} ms | ${goal} | x${(quantile(values, 0.95) / quantile(apiCall, 0.95)).toFixed(1)} |`;
console.log(`\n## dashboard in Chromium (${tries} tries each)`);
console.log('| measure | p50 | p95 | goal (p95) | p95 / API call p95 |');
console.log('|---|---|---|---|---|');
console.log(row('inventory: first table paint after navigation', firstPaint, '300 ms'));
console.log(row('inventory: first contentful paint (anything) after navigation', firstContent, ''));
console.log(row('inventory: status filter change to new rows painted', filterChange, '300 ms'));
console.log(row('overview: figures and chart painted after navigation', overview, '500 ms'));
console.log(row('reference: the list API call itself, fetch() in the page', apiCall, ''));
console.log(`| first visit to the overview: JavaScript downloaded (gzip) | ${(scriptBytes / 1024).toFixed(0)} KB | | 300 KB | |`);
