// A real OpenID Connect provider for the tests (panva/node-oidc-provider, OpenID Certified),
// started on loopback by tests/sso/conftest.py:  node server.mjs CONFIG.json
//
// CONFIG: {"issuer": "http://127.0.0.1:PORT", "port": PORT, "cookie_prefix": "op1",
//          "clients": [{client_id, client_secret, redirect_uris}],
//          "accounts": {"alice": {"password": "...", "claims": {"email": ..., "groups": [...]}}}}
//
// The provider's own endpoints (discovery, authorization, token, JWKS, userinfo) are the
// library's; this file adds only the sign-in page a person types into (the library ships none
// for production) and grants the requested scopes without a consent page, as a company IdP
// does for its own applications. Prints "listening <issuer>" once it accepts connections.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts;
const prefix = config.cookie_prefix || 'op';

// A fresh signing key per run: the portal must fetch it from jwks_uri, never assume it.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `${prefix}-key`, use: 'sig', alg: 'RS256' };

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [signingKey] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
    org: ['org'],
  },
  // Claims in the ID token itself, as Okta, Entra ID, Google and Keycloak put them there.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  cookies: {
    keys: [`${prefix}-cookie-signing-key-for-tests-only`],
    // Browsers keep cookies per host, not per port: two providers on 127.0.0.1 need own names.
    names: { session: `_${prefix}_session`, interaction: `_${prefix}_interaction`, resume: `_${prefix}_resume` },
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account.claims }) };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    // First-party application: every requested scope and claim is granted without a consent page.
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    await grant.save();
    return grant;
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, client, error) {
  return `<!doctype html><html><head><title>Test IdP sign-in</title></head><body>
<h1>Test identity provider</h1><p>Sign in to continue to <b id="client">${escape(client)}</b></p>
${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Login <input id="login" name="login" autocomplete="off"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, path) {
  const details = await provider.interactionDetails(req, res);
  const send = (status, html) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  };
  if (req.method === 'GET') {
    if (details.prompt.name !== 'login') {
      // Consent: the grant above already covers it.
      return provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
    }
    return send(200, loginPage(details.uid, details.params.client_id));
  }
  if (req.method === 'POST' && path.endsWith('/login')) {
    const form = await readForm(req);
    const account = accounts[form.get('login')];
    if (!account || account.password !== form.get('password')) {
      return send(200, loginPage(details.uid, details.params.client_id, 'Wrong login or password'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: form.get('login') } }, { mergeWithLastSubmission: false });
  }
  return send(404, 'not found');
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const path = new URL(req.url, config.issuer).pathname;
  if (path.startsWith('/interaction/')) {
    interaction(req, res, path).catch((err) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${err.message}`);
    });
    return;
  }
  callback(req, res);
});
server.listen(config.port, new URL(config.issuer).hostname, () => {
  console.log(`listening ${config.issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
