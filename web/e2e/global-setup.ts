// Starts a real cmpd for the end-to-end tests: binary from $CMPD, a fresh temp data dir, a
// free port; waits for /readyz, reads the admin token, seeds owners and certificates through
// the API, and finds the dashboard to drive. What tests need goes to a state file (state.ts).
//
// The dashboard is, in order: $CMP_E2E_UI_URL (e.g. a `vite dev` you started with CMP_API
// pointing at $CMP_E2E_LISTEN); cmpd's own, when it embeds one and CMP_E2E_UI is not
// `preview`; else a `vite preview` of a fresh build, proxying to this cmpd, started here.
// CMP_E2E_UI=cmpd (scripts/test) makes cmpd's own the only choice.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { OUTPUT_DIR, STATE_ENV, type E2eState } from './state';
import { seed } from './seed';
import { waitFor } from './servers';

const WEB_DIR = resolve(import.meta.dirname, '..');

/** A port nobody listens on: from $CMP_E2E_PORTS ("3910-3949") when set, else the OS's pick. */
async function freePort(): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number | null>((done) => {
      const server = createServer();
      server.once('error', () => done(null));
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        const chosen = typeof address === 'object' && address ? address.port : null;
        server.close(() => done(chosen));
      });
    });
  const range = process.env.CMP_E2E_PORTS?.match(/^(\d+)-(\d+)$/);
  if (!range) {
    const port = await tryPort(0);
    if (port) return port;
    throw new Error('no free port');
  }
  for (let port = Number(range[1]); port <= Number(range[2]); port++) {
    if (await tryPort(port)) return port;
  }
  throw new Error(`no free port in CMP_E2E_PORTS=${process.env.CMP_E2E_PORTS}`);
}

/** True when cmpd serves the real dashboard (not the notice of a build without npm). */
async function servesDashboard(apiUrl: string): Promise<boolean> {
  try {
    const page = await (await fetch(`${apiUrl}/`)).text();
    return page.includes('id="root"');
  } catch {
    return false;
  }
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const cmpd = process.env.CMPD;
  if (!cmpd) {
    throw new Error(
      'CMPD is not set: the end-to-end tests start a real server. Build one and point CMPD at it, ' +
        'e.g. CMPD=/var/tmp/cmp-ci-target/debug/cmpd npm run e2e',
    );
  }
  if (!existsSync(cmpd)) throw new Error(`CMPD=${cmpd}: no such file`);

  mkdirSync(OUTPUT_DIR, { recursive: true });
  const children: ChildProcess[] = [];
  // Everything of this run (data, built page, state) in one temp dir, removed at the end.
  const runDir = mkdtempSync(join(tmpdir(), 'cmp-e2e-'));
  const dataDir = join(runDir, 'data');
  const listen = process.env.CMP_E2E_LISTEN ?? `127.0.0.1:${await freePort()}`;
  const apiUrl = `http://${listen}`;
  const cmpdLog = join(OUTPUT_DIR, `cmpd-${process.pid}.log`);
  const cmpdOut = openSync(cmpdLog, 'w');
  const server = spawn(cmpd, ['--data-dir', dataDir, '--listen', listen], {
    stdio: ['ignore', cmpdOut, cmpdOut],
    // Loopback is reachable by scans only when an administrator lists it (scans.spec.ts).
    env: { ...process.env, NO_COLOR: '1', CMPD_DISCOVERY__ALLOWED_RANGES: '["127.0.0.0/8"]' },
  });
  children.push(server);

  const teardown = async () => {
    for (const child of children.reverse()) {
      if (child.exitCode === null) child.kill('SIGTERM');
    }
    rmSync(runDir, { recursive: true, force: true });
  };

  try {
    await waitFor(`${apiUrl}/readyz`, 'cmpd', server, cmpdLog);
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const seeded = await seed(apiUrl, token, runDir);

    let uiUrl = process.env.CMP_E2E_UI_URL;
    if (!uiUrl && process.env.CMP_E2E_UI !== 'preview' && (await servesDashboard(apiUrl))) uiUrl = apiUrl;
    if (!uiUrl && process.env.CMP_E2E_UI === 'cmpd') {
      // CI tests the dashboard as users get it: embedded in cmpd, under cmpd's headers.
      throw new Error(`CMP_E2E_UI=cmpd, but ${cmpd} serves no dashboard (was it built without npm?)`);
    }
    if (!uiUrl) {
      // cmpd has no dashboard of its own (or preview was asked for): build this tree's and
      // serve it with the production CSP, proxying the API to this cmpd.
      const vite = join(WEB_DIR, 'node_modules/vite/bin/vite.js');
      const dist = join(runDir, 'dist');
      execFileSync(process.execPath, [vite, 'build', '--outDir', dist, '--emptyOutDir', '--logLevel', 'warn'], {
        cwd: WEB_DIR,
        stdio: 'inherit',
      });
      const port = await freePort();
      const previewLog = join(OUTPUT_DIR, `vite-preview-${process.pid}.log`);
      const previewOut = openSync(previewLog, 'w');
      const preview = spawn(
        process.execPath,
        [vite, 'preview', '--outDir', dist, '--host', '127.0.0.1', '--port', String(port), '--strictPort'],
        { cwd: WEB_DIR, stdio: ['ignore', previewOut, previewOut], env: { ...process.env, CMP_API: apiUrl } },
      );
      children.push(preview);
      uiUrl = `http://127.0.0.1:${port}`;
      await waitFor(`${uiUrl}/`, 'vite preview', preview, previewLog);
    }

    const state: E2eState = { apiUrl, uiUrl, token, ...seeded };
    const stateFile = join(runDir, 'state.json');
    writeFileSync(stateFile, JSON.stringify(state, null, 2));
    process.env[STATE_ENV] = stateFile;
    return teardown;
  } catch (error) {
    await teardown();
    throw error;
  }
}
