// The single sign-on tests' own world: the test OpenID provider (scripts/oidc-provider, a real
// oidc-provider with the users ada, sam, dev and eve and no login form) and a cmpd of their
// own that knows it as "corp", with two owners and a certificate for each, so that the shared
// cmpd of global-setup.ts (which has no provider) is left as it is.
//
// The dashboard is served as global-setup.ts chose for the run: cmpd's own (public_url is then
// cmpd), or, when that run used a `vite preview` of this tree's build, another preview of the
// same build in front of this cmpd (public_url is then the preview: the browser must see one
// origin for the page, /auth and /api, as it would behind a gateway).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { call, selfSigned } from './seed';
import { waitFor } from './servers';
import { OUTPUT_DIR, STATE_ENV, readState } from './state';

const WEB_DIR = resolve(import.meta.dirname, '..');

/** Where provider.mjs and its npm packages are: $CMP_OIDC_PROVIDER_DIR, else this checkout's. */
const PROVIDER_DIR = resolve(process.env.CMP_OIDC_PROVIDER_DIR ?? join(WEB_DIR, '../scripts/oidc-provider'));

export const PROVIDER_NAME = 'corp';

/** The test provider's users (provider.mjs) and what the config below makes of them. */
export const USERS = {
  ada: { email: 'ada@example.test', role: 'Administrator' },
  sam: { email: 'sam@example.test', role: 'Security' },
  dev: { email: 'dev@example.test', role: 'Developer' },
  eve: { email: 'eve@example.test', role: null },
} as const;
export type UserName = keyof typeof USERS;

export interface SsoWorld {
  /** Where the browser opens the dashboard; also auth.public_url. */
  uiUrl: string;
  /** This cmpd's own address (the same as uiUrl unless a preview is in front). */
  apiUrl: string;
  /** The provider's issuer URL. */
  issuer: string;
  /** This cmpd's admin token. */
  token: string;
  /** Seeded certificates by name, with their owner. */
  certificates: Record<string, { id: string; owner: string }>;
  stop: () => Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? done(port) : fail(new Error('no free port'))));
    });
  });
}

const quote = (value: string) => JSON.stringify(value);

/** Starts the provider, then cmpd (and a preview when the run uses one), and seeds cmpd. */
export async function startSsoWorld(): Promise<SsoWorld> {
  const cmpd = process.env.CMPD;
  if (!cmpd || !existsSync(cmpd)) throw new Error(`CMPD=${cmpd ?? ''}: set it to a built cmpd`);
  if (!existsSync(join(PROVIDER_DIR, 'node_modules/oidc-provider'))) {
    throw new Error(
      `the test OpenID provider's npm packages are not in ${PROVIDER_DIR}: run npm ci there ` +
        '(or ./scripts/services-up), or point CMP_OIDC_PROVIDER_DIR at a copy that has them',
    );
  }
  // The shared run's dashboard: a preview's build sits beside its state file (global-setup.ts).
  const shared = readState();
  const previewDist = shared.uiUrl !== shared.apiUrl ? join(dirname(process.env[STATE_ENV]!), 'dist') : null;
  if (previewDist && !existsSync(join(previewDist, 'index.html'))) throw new Error(`no dashboard build in ${previewDist}`);

  const runDir = mkdtempSync(join(tmpdir(), 'cmp-e2e-oidc-'));
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) {
      if (child.exitCode === null) {
        const exited = new Promise((done) => child.once('exit', done));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      }
    }
    rmSync(runDir, { recursive: true, force: true });
  };

  try {
    const [cmpdPort, providerPort, previewPort] = [await freePort(), await freePort(), await freePort()];
    const apiUrl = `http://127.0.0.1:${cmpdPort}`;
    const uiUrl = previewDist ? `http://127.0.0.1:${previewPort}` : apiUrl;
    const issuer = `http://127.0.0.1:${providerPort}`;

    const providerLog = join(OUTPUT_DIR, `oidc-provider-${process.pid}.log`);
    const providerOut = openSync(providerLog, 'w');
    const provider = spawn(process.execPath, ['provider.mjs'], {
      cwd: PROVIDER_DIR,
      stdio: ['ignore', providerOut, providerOut],
      env: {
        ...process.env,
        OIDC_PORT: String(providerPort),
        OIDC_REDIRECT_URIS: `${uiUrl}/auth/callback`,
        // cmpd sends the browser back to <public_url>/ after the provider's logout.
        OIDC_POST_LOGOUT_REDIRECT_URIS: `${uiUrl}/`,
        OIDC_DEFAULT_USER: 'ada',
      },
    });
    children.push(provider);
    await waitFor(`${issuer}/.well-known/openid-configuration`, 'the OpenID provider', provider, providerLog);

    const config = join(runDir, 'cmpd.toml');
    writeFileSync(
      config,
      [
        '[auth]',
        `public_url = ${quote(uiUrl)}`,
        '',
        '[[auth.oidc.providers]]',
        `name = ${quote(PROVIDER_NAME)}`,
        `issuer = ${quote(issuer)}`,
        'client_id = "cmp-web"',
        'client_secret = "cmp-web-secret"',
        'scopes = ["openid", "email", "profile", "groups"]',
        'groups_claim = "groups"',
        'roles = { "cmp-admins" = "admin", "cmp-security" = "security" }',
        'teams = { "team-a" = "team-a" }',
        '',
      ].join('\n'),
    );
    const dataDir = join(runDir, 'data');
    const cmpdLog = join(OUTPUT_DIR, `cmpd-oidc-${process.pid}.log`);
    const cmpdOut = openSync(cmpdLog, 'w');
    const server = spawn(cmpd, ['--config', config, '--data-dir', dataDir, '--listen', `127.0.0.1:${cmpdPort}`], {
      stdio: ['ignore', cmpdOut, cmpdOut],
      env: { ...process.env, NO_COLOR: '1' },
    });
    children.push(server);
    await waitFor(`${apiUrl}/readyz`, 'cmpd', server, cmpdLog);
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();

    // team-a is what dev's group gives; "elsewhere" is an owner dev must not see.
    const certificates: SsoWorld['certificates'] = {};
    for (const [owner, name] of [['team-a', 'app.team-a.example'], ['elsewhere', 'db.elsewhere.example']] as const) {
      await call(apiUrl, token, 'POST', '/api/v1/owners', { name: owner, description: `The ${owner} team` });
      const answer = await call<{ certificates: { id: string }[] }>(
        apiUrl, token, 'POST', `/api/v1/certificates/import?owner=${owner}`, selfSigned(runDir, { name, days: 90, key: 'ec:param:P-256' }), 'application/x-pem-file',
      );
      certificates[name] = { id: answer.certificates[0]!.id, owner };
    }

    if (previewDist) {
      const vite = join(WEB_DIR, 'node_modules/vite/bin/vite.js');
      const previewLog = join(OUTPUT_DIR, `vite-preview-oidc-${process.pid}.log`);
      const previewOut = openSync(previewLog, 'w');
      const preview = spawn(
        process.execPath,
        [vite, 'preview', '--outDir', previewDist, '--host', '127.0.0.1', '--port', String(previewPort), '--strictPort',
          // The run's own preview (global-setup.ts) holds vite's one-preview-per-project lock.
          '--bypass-lock'],
        { cwd: WEB_DIR, stdio: ['ignore', previewOut, previewOut], env: { ...process.env, CMP_API: apiUrl } },
      );
      children.push(preview);
      await waitFor(`${uiUrl}/`, 'vite preview', preview, previewLog);
    }

    return { uiUrl, apiUrl, issuer, token, certificates, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
