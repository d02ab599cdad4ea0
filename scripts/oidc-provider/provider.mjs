// A real OpenID provider for CMP's tests: panva's oidc-provider 9 (a certified implementation),
// set up only through environment variables, with no login or consent forms. cmp-testkit's
// `oidc` module starts one per test; it runs by hand as well:
//
//   cd scripts/oidc-provider && npm ci && OIDC_PORT=9090 node provider.mjs
//
// Environment
//   OIDC_PORT                 port on 127.0.0.1 (default 9090)
//   OIDC_ISSUER               issuer URL (default http://127.0.0.1:$OIDC_PORT)
//   OIDC_AUDIENCE             `aud` of every access token, which are all RS256 JWTs (default
//                             https://cmp.test/api): it is the default resource indicator
//   OIDC_REDIRECT_URIS        comma list: cmp-web's redirect URIs (default
//                             http://127.0.0.1:3000/callback)
//   OIDC_POST_LOGOUT_REDIRECT_URIS  comma list: cmp-web's post-logout redirect URIs (default: the
//                             redirect URIs)
//   OIDC_USERS_FILE           JSON {"<login>": {"email": ..., "name": ..., "groups": [...], ...}};
//                             `sub` is the login name; every other field is a claim. Default: the
//                             users ada, sam, dev and eve of cmp-testkit.
//   OIDC_DEFAULT_USER         who logs in when nothing names a user (default: the file's first)
//   OIDC_KEYS                 comma list of PEM files with RSA private keys (PKCS#8, as `openssl
//                             genpkey -algorithm RSA` writes them). A key's `kid` is its file name
//                             without extension. The FIRST key signs; the others are only
//                             published in the JWKS (rotation: restart with "new.pem,old.pem").
//                             Default: one key made at start, kid "generated".
//   OIDC_ACCESS_TTL           access token lifetime in seconds (default 3600)
//   OIDC_ID_TOKEN_TTL         ID token lifetime in seconds (default 3600)
//   OIDC_SERVICE_GROUPS       comma list: the `groups` claim of cmp-service's tokens (default
//                             cmp-automation)
//
// Clients
//   cmp-web      confidential (secret cmp-web-secret, client_secret_basic): authorization code
//                with PKCE S256 (required), refresh tokens; the redirect URIs above
//   cmp-service  confidential (secret cmp-service-secret, client_secret_basic or _post):
//                client_credentials only; its access tokens carry `groups` = OIDC_SERVICE_GROUPS
//   cmp-cli      public (token_endpoint_auth_method none), a native application: device code,
//                and authorization code with PKCE at http://127.0.0.1/callback on any port;
//                refresh tokens
// Scopes openid, email, profile, groups, offline_access. The ID token holds the claims of the
// scopes asked (`groups` with the groups scope); a user's access token always holds `groups`
// and `email`.
//
// Logging in, code flow: GET /auth?... answers 303 to /interaction/<uid>; GET of that logs in
// the user named by (first that is set) the query parameter `login` of that URL, the `login_hint`
// of the authorization request (a login name or an email), OIDC_DEFAULT_USER; then it grants
// every scope asked and answers 303 back to /auth/<uid>, which redirects to the client with the
// code. A client that follows redirects and keeps cookies logs in with no form. `?deny=1` on the
// interaction URL ends it with error=access_denied instead. An unknown user is a 400.
//
// Device flow, over plain HTTP with a cookie jar:
//   1. the device: POST /device/auth client_id=cmp-cli&scope=openid groups
//      -> device_code, user_code, verification_uri (.../device)
//   2. the user: GET /device -> an HTML form; take the hidden field `xsrf` (value="...")
//   3. POST /device (form) xsrf=<xsrf>&user_code=<user_code>&confirm=yes -> 303 /interaction/<uid>
//      (without confirm=yes it shows a confirmation page first)
//   4. GET /interaction/<uid>?login=<user> (or ?deny=1) -> 303 /device/<uid>
//   5. GET /device/<uid> -> 200, a page with "Sign-in Success"
//   6. the device: POST /token grant_type=urn:ietf:params:oauth:grant-type:device_code
//      &device_code=...&client_id=cmp-cli -> tokens (authorization_pending before step 5)
//
// Logout: GET /session/end?id_token_hint=...&post_logout_redirect_uri=...&state=... shows a
// confirmation form (hidden `xsrf`); POST /session/end/confirm xsrf=...&logout=yes ends the
// session and answers 303 to the post-logout redirect URI.
//
// Prints `listening <issuer>` when ready.
//
// Facts about oidc-provider 9 (9.13.3), learned writing this:
// - It needs Node.js 20.18 or later (it calls URL.parse): Debian 12's nodejs (18) is too old.
//   On Node 20 it warns "Unsupported runtime. Use Node.js v22.x LTS" and works.
// - An access token is a JWT only when it is issued for a resource server
//   (features.resourceIndicators, getResourceServerInfo with accessTokenFormat "jwt"); else it
//   is opaque. With `openid` in the scope, the code grant applies the resource only when
//   useGrantedResource() says yes; otherwise the token is an opaque one for /me.
// - An access token's `scope` holds only the scopes its resource server lists (here email,
//   profile, groups); extraTokenClaims() adds `groups` and `email`. Its header has typ at+jwt.
// - The first key of `jwks` that fits the algorithm signs (a stable sort by score); the others
//   are published in /jwks. PEM keys become JWKs with node:crypto (jose is not needed).
// - Native clients (cmp-cli) always get a consent prompt after the login; giving the consent
//   with the login result (as here) makes it one interaction.
// - offline_access is dropped silently from an authorization request unless it has
//   prompt=consent and the client may use refresh_token; the device flow keeps it.
// - Loopback redirect URIs match on any port only for application_type "native".
// - The device pages POST to /device with a per-session `xsrf` field; `confirm=yes` in the
//   first POST skips the confirmation page. User codes are matched without case or dash.
//   A refused or unknown code re-renders the input page with status 200.
// - Logging out without post_logout_redirect_uri ends on /session/end/success.
// - Sessions, grants and device codes live in memory: a restart forgets them, while JWTs
//   already issued stay valid for a verifier that still finds their key in the JWKS.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

// A comma list from the environment; `fallback` when it is unset or empty.
const list = (value, fallback) => {
  const items = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return items.length ? items : fallback;
};
const seconds = (name, fallback) => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive number of seconds`);
  return n;
};

const port = Number(process.env.OIDC_PORT ?? 9090);
const issuer = process.env.OIDC_ISSUER || `http://127.0.0.1:${port}`;
const audience = process.env.OIDC_AUDIENCE || 'https://cmp.test/api';
const redirectUris = list(process.env.OIDC_REDIRECT_URIS, ['http://127.0.0.1:3000/callback']);
const postLogoutUris = list(process.env.OIDC_POST_LOGOUT_REDIRECT_URIS, redirectUris);
const accessTtl = seconds('OIDC_ACCESS_TTL', 3600);
const idTokenTtl = seconds('OIDC_ID_TOKEN_TTL', 3600);
const serviceGroups = list(process.env.OIDC_SERVICE_GROUPS, ['cmp-automation']);

const users = process.env.OIDC_USERS_FILE
  ? JSON.parse(fs.readFileSync(process.env.OIDC_USERS_FILE, 'utf8'))
  : Object.fromEntries([
    ['ada', 'Ada Admin', ['cmp-admins']],
    ['sam', 'Sam Security', ['cmp-security']],
    ['dev', 'Dev Teams', ['team-a', 'team-b']],
    ['eve', 'Eve Outsider', ['strangers']],
  ].map(([login, name, groups]) => [login, { name, groups, email: `${login}@example.test`, email_verified: true }]));
const defaultUser = process.env.OIDC_DEFAULT_USER || Object.keys(users)[0];
if (!users[defaultUser]) throw new Error(`OIDC_DEFAULT_USER ${defaultUser} is not in the users`);

// A login name, or a user's email (what an RP may well put in login_hint).
function findUser(hint) {
  if (hint === undefined || hint === '') return undefined;
  if (Object.hasOwn(users, hint)) return hint;
  return Object.keys(users).find((login) => users[login].email === hint) ?? null;
}

const SCOPES = ['openid', 'email', 'profile', 'groups', 'offline_access'];
// The scopes that access tokens for the API (OIDC_AUDIENCE) carry in `scope`, when asked.
const API_SCOPES = ['email', 'profile', 'groups'];

// Adds every scope that `scope` (a request's) asks for to a grant: the consent a form would ask.
function grantAsked(grant, scope) {
  const asked = (scope ?? '').split(' ');
  grant.addOIDCScope(asked.filter((s) => SCOPES.includes(s)).join(' '));
  const api = asked.filter((s) => API_SCOPES.includes(s));
  if (api.length) grant.addResourceScope(audience, api.join(' '));
  return grant;
}

function signingKeys() {
  const files = list(process.env.OIDC_KEYS, []);
  if (files.length === 0) {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    return [{ ...privateKey.export({ format: 'jwk' }), kid: 'generated', alg: 'RS256', use: 'sig' }];
  }
  return files.map((file) => {
    const key = crypto.createPrivateKey(fs.readFileSync(file, 'utf8'));
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`${file}: not an RSA private key`);
    const kid = path.basename(file).replace(/\.[^.]*$/, '');
    return { ...key.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  });
}

const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head>`
  + `<body><h1>${title}</h1>${body}</body></html>`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'cmp-web',
      client_secret: 'cmp-web-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutUris,
    },
    {
      client_id: 'cmp-service',
      client_secret: 'cmp-service-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'cmp-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
  ],
  responseTypes: ['code'],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
  jwks: { keys: signingKeys() },
  cookies: { keys: ['cmp-test-provider-cookie-key'] },
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name', 'nickname', 'picture', 'locale'],
    groups: ['groups'],
  },
  // Claims of the scopes asked go into the ID token itself, not only to /me.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  findAccount: (_ctx, id) => users[id] && {
    accountId: id,
    claims: () => ({ sub: id, preferred_username: id, ...users[id] }),
  },
  extraTokenClaims: (_ctx, token) => {
    if (token.accountId && users[token.accountId]) {
      const { groups = [], email } = users[token.accountId];
      return { groups, email };
    }
    if (token.clientId === 'cmp-service') return { groups: serviceGroups };
    return undefined;
  },
  // No consent screen: the grant holds every scope the request asks for.
  loadExistingGrant: async (ctx) => {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    const grant = (grantId && await oidc.provider.Grant.find(grantId))
      || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    grantAsked(grant, oidc.params.scope);
    await grant.save();
    return grant;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: accessTtl,
    IdToken: idTokenTtl,
    AuthorizationCode: 120,
    DeviceCode: 600,
    Interaction: 600,
    RefreshToken: 86400,
    Grant: 86400,
    Session: 86400,
  },
  clientBasedCORS: () => false,
  renderError: (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<pre>${JSON.stringify(out).replace(/</g, '&lt;')}</pre>`);
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    deviceFlow: {
      enabled: true,
      // `err`: why the code was sent back (not found, expired, used, or the user said no).
      userCodeInputSource: (ctx, form, _out, err) => {
        const why = err ? `<p class="error">${err.message}</p>` : '';
        ctx.body = page('Enter the code', `${why}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      userCodeConfirmSource: (ctx, form, _client, _info, userCode) => {
        ctx.body = page('Confirm the device', `<p><code>${userCode}</code></p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>`);
      },
      successSource: (ctx) => { ctx.body = page('Sign-in Success', `<p>${ctx.oidc.client.clientId} may go on.</p>`); },
    },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: (ctx, form) => {
        ctx.body = page('Sign out?', `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
      },
      postLogoutSuccessSource: (ctx) => { ctx.body = page('Signed out', ''); },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== audience) throw new errors.InvalidTarget(`the only resource is ${audience}`);
        return {
          scope: API_SCOPES.join(' '),
          audience,
          accessTokenTTL: accessTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
  'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (_ctx, err) => console.error(`${event}: ${err.message} ${err.error_description ?? ''}`));
}

// The interaction: no form, the user is picked as the header says and every scope is granted.
provider.use(async (ctx, next) => {
  const match = ctx.method === 'GET' && /^\/interaction\/[^/]+$/.test(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params } = details;
  let result;
  if (ctx.query.deny) {
    result = { error: 'access_denied', error_description: 'the test user said no' };
  } else if (prompt.name === 'login') {
    const named = ctx.query.login ?? params.login_hint;
    const login = named === undefined ? defaultUser : findUser(named);
    if (!login) {
      ctx.status = 400;
      ctx.body = `no such user: ${named}\n`;
      return undefined;
    }
    // Consent goes with the login: native clients (cmp-cli) would otherwise be sent to a second
    // interaction, as their consent is always asked for.
    const grant = grantAsked(new provider.Grant({ accountId: login, clientId: params.client_id }), params.scope);
    result = { login: { accountId: login }, consent: { grantId: await grant.save() } };
  } else if (prompt.name === 'consent') {
    const grant = (details.grantId && await provider.Grant.find(details.grantId))
      || new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    grantAsked(grant, params.scope);
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  } else {
    ctx.status = 400;
    ctx.body = `unexpected prompt ${prompt.name}\n`;
    return undefined;
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(to);
  return undefined;
});

const server = http.createServer(provider.callback());
server.on('error', (err) => {
  console.error(`cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
