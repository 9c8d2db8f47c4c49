// A real OpenID provider (oidc-provider 9) on loopback for the axum-users test suites.
//
// Usage: node provider.mjs [port]          (port 0 or absent: any free port)
//
// Environment:
//   OIDC_PORT                   port when no argument is given (default 0)
//   OIDC_CLIENT_ID              client_id of the confidential client (default "test-client")
//   OIDC_CLIENT_SECRET          its secret (default "test-secret")
//   OIDC_REDIRECT_URIS          its redirect URIs, comma-separated (default "http://127.0.0.1/callback")
//   OIDC_CLIENTS                JSON array of {client_id, client_secret, redirect_uris}: several
//                               clients; replaces the three variables above
//   OIDC_TOKEN_AUTH_METHOD      client_secret_post (default) or client_secret_basic: the method the
//                               clients are registered with, listed first in discovery
//
// Prints "READY <issuer>" once listening; exits when stdin closes or on SIGTERM/SIGINT.
//
// Login needs no browser: the authorization URL redirects to /interaction/<uid>, whose page is a
// form posting to /interaction/<uid>/login with the fields account_id, email and email_verified
// ("true"/"false"), which become the account's `sub`, `email` and `email_verified` claims, and an
// optional `name`, the `name` claim of the `profile` scope. The
// consent page posts to /interaction/<uid>/confirm. PKCE (S256) is required for every client;
// every client may use refresh tokens (issued on each code exchange); revocation is enabled.

import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OIDC_PORT ?? 0);
const authMethod = process.env.OIDC_TOKEN_AUTH_METHOD ?? 'client_secret_post';
const otherMethod = authMethod === 'client_secret_post' ? 'client_secret_basic' : 'client_secret_post';

function configuredClients() {
  const base = {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: authMethod,
  };
  if (process.env.OIDC_CLIENTS) {
    return JSON.parse(process.env.OIDC_CLIENTS).map((client) => ({ ...base, ...client }));
  }
  return [{
    ...base,
    client_id: process.env.OIDC_CLIENT_ID ?? 'test-client',
    client_secret: process.env.OIDC_CLIENT_SECRET ?? 'test-secret',
    redirect_uris: (process.env.OIDC_REDIRECT_URIS ?? 'http://127.0.0.1/callback')
      .split(',').map((uri) => uri.trim()).filter(Boolean),
  }];
}

// Accounts are made by the login form: account id -> { email, email_verified }.
const accounts = new Map();

function configuration() {
  return {
    clients: configuredClients(),
    clientAuthMethods: [authMethod, otherMethod],
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => {
        const account = accounts.get(sub) ?? { email: undefined, email_verified: false };
        return { sub, email: account.email, email_verified: account.email_verified, name: account.name };
      },
    }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['axum-users-test-cookie-key'] },
    // Quiet, test-only: loopback http issuer.
    renderError: async (ctx, out) => {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  };
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(body))));
    req.on('error', reject);
  });
}

function page(res, uid, prompt) {
  const login = prompt === 'login';
  const action = `/interaction/${uid}/${login ? 'login' : 'confirm'}`;
  const fields = login
    ? '<input name="account_id"><input name="email"><input name="email_verified" value="true">'
    : '';
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>${prompt}</title>`
    + `<form method="post" action="${action}" data-prompt="${prompt}">${fields}`
    + '<button type="submit">Continue</button></form>');
}

async function confirm(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  if (prompt.details.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function interaction(provider, req, res, uid, step) {
  if (req.method === 'GET' && !step) {
    const details = await provider.interactionDetails(req, res);
    return page(res, uid, details.prompt.name);
  }
  if (req.method === 'POST' && step === 'login') {
    const form = await readForm(req);
    if (form.deny === 'true') {
      const refusal = { error: 'access_denied', error_description: 'End-User aborted interaction' };
      return provider.interactionFinished(req, res, refusal, { mergeWithLastSubmission: false });
    }
    const accountId = form.account_id;
    if (!accountId) {
      res.writeHead(400).end('account_id is required');
      return undefined;
    }
    accounts.set(accountId, {
      email: form.email || undefined,
      email_verified: form.email_verified === 'true',
      name: form.name || undefined,
    });
    return provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && step === 'confirm') {
    return confirm(provider, req, res);
  }
  res.writeHead(404).end();
  return undefined;
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const match = /^\/interaction\/([^/?]+)(?:\/(login|confirm))?(?:\?.*)?$/.exec(req.url ?? '');
    if (!match) {
      callback(req, res);
      return;
    }
    interaction(provider, req, res, match[1], match[2]).catch((error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(error?.message ?? error));
    });
  });
  console.log(`READY ${issuer}`);
});

function stop() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}

process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
