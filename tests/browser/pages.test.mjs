// The hosted pages (/ui) in headless Chromium: sign up → verification mail (file mailer) →
// verify → sign in → account → change password → sign out → sign in with the new password;
// forgot → reset from the mailed link; sign in with the real OpenID provider (tests/oidc), and
// link then unlink a provider account from the account page;
// enable two-step sign-in on the account page (TOTP codes computed here, RFC 6238) → sign in
// with a code → sign in with a recovery code → turn it off;
// passkeys with Chromium's virtual authenticator (CDP WebAuthn): add one on the account page →
// sign out → sign in with it → rename → the passkey as the second step → turn two-step sign-in
// off with a code → remove it with the current password;
// sign out one device from another browser context; a cross-site form post is refused; a
// return_to off the allow-list is ignored; the pages' own forms post with `Origin: null`
// (Referrer-Policy: no-referrer) and pass; axe-core on every page (no serious or critical
// violation); screenshots of every page at desktop and 360 px into tests/browser/screenshots/
// (ignored by git).
//
// Starts the real server binary (AXUM_USERS_BIN, as docs.test.mjs) on a free port, with the
// pages on by default. Without Chromium, playwright-core or the binary it prints SKIPPED: and
// passes, unless BROWSER_TESTS_REQUIRED=1. The OpenID test needs tests/oidc's node_modules
// (npm ci --prefix tests/oidc); without them it is skipped unless OIDC_HARNESS_REQUIRED=1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || join(root, 'target');
const binary = process.env.AXUM_USERS_BIN || join(targetDir, 'debug', 'axum-users-server');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const required = process.env.BROWSER_TESTS_REQUIRED === '1';
const axePath = join(here, 'node_modules', 'axe-core', 'axe.min.js');
const oidcProvider = join(root, 'tests', 'oidc', 'provider.mjs');
const oidcReady = existsSync(join(root, 'tests', 'oidc', 'node_modules', 'oidc-provider'));
const shots = join(here, 'screenshots');

let chromium = null;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  chromium = null;
}

const missing = [
  [chromium === null, 'playwright-core (npm ci --prefix tests/browser)'],
  [!existsSync(axePath), 'axe-core (npm ci --prefix tests/browser)'],
  [!existsSync(chromiumPath), `Chromium at ${chromiumPath} (apt-get install chromium)`],
  [!existsSync(binary), `the server binary ${binary} (cargo build -p axum-users-server)`],
].filter(([absent]) => absent).map(([, what]) => what);
if (missing.length > 0) {
  if (required) throw new Error(`BROWSER_TESTS_REQUIRED=1 but missing: ${missing.join(', ')}`);
  console.log(`SKIPPED: pages browser tests need ${missing.join(', ')}`);
}
const skip = missing.length > 0;

let server;
let oidc;
let base;
let dir;
let browser;
const issuerName = 'corp';

function freePort() {
  return new Promise((ok) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

/** Starts a child and resolves with the first match of `pattern` in its output. */
function waitFor(child, stream, pattern, what) {
  return new Promise((ok, fail) => {
    let log = '';
    const timer = setTimeout(() => fail(new Error(`${what} did not start:\n${log}`)), 30000);
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      log += chunk;
      const found = log.match(pattern);
      if (found) {
        clearTimeout(timer);
        ok(found[1]);
      }
    });
    child.on('exit', (code) => fail(new Error(`${what} exited (${code}):\n${log}`)));
  });
}

async function startOidc(redirects) {
  const env = {
    ...process.env,
    OIDC_CLIENT_ID: 'pages-client',
    OIDC_CLIENT_SECRET: 'pages-secret',
    OIDC_REDIRECT_URIS: redirects.join(','),
  };
  oidc = spawn(process.execPath, [oidcProvider, '0'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  return waitFor(oidc, oidc.stdout, /READY (\S+)/, 'the OpenID provider');
}

/** The server binary in `cwd` with `env`, once it listens. */
async function startServer(cwd, env) {
  const child = spawn(binary, [], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  await waitFor(child, child.stderr, /listening on (\S+)/, 'the server');
  return child;
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'axum-users-pages-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  let toml = '';
  if (oidcReady) {
    const issuer = await startOidc([
      `${base}/auth/${issuerName}/callback`,
      `${base}/auth/associate/${issuerName}/callback`,
    ]);
    toml = `[oauth.${issuerName}]\nkind = "oidc"\nissuer = "${issuer}"\nclient_id = "pages-client"\n`
      + 'client_secret = "pages-secret"\nbackend = "cookie"\ntrust_email_verified = true\n'
      + 'is_verified_by_default = true\n';
  } else if (process.env.OIDC_HARNESS_REQUIRED === '1') {
    throw new Error('OIDC_HARNESS_REQUIRED=1 but tests/oidc has no node_modules (npm ci --prefix tests/oidc)');
  }
  writeFileSync(join(dir, 'axum-users.toml'), toml);
  const env = {
    PATH: process.env.PATH ?? '',
    AXUM_USERS_BIND: `127.0.0.1:${port}`,
    AXUM_USERS_PUBLIC_URL: base,
    AXUM_USERS_DATABASE_URL: `sqlite://${join(dir, 'users.db')}`,
    AXUM_USERS_MAILER: `file:${join(dir, 'mail')}`,
    AXUM_USERS_COOKIE_SECURE: 'false',
    AXUM_USERS_ARGON2_MEMORY_KIB: '256',
    AXUM_USERS_ARGON2_ITERATIONS: '1',
    AXUM_USERS_UI_RETURN_TO: 'http://app.localtest',
    AXUM_USERS_MAIL_COOLDOWN_SECONDS: '0',
  };
  server = await startServer(dir, env);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.kill();
  oidc?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A browser context; every request to another host than the server's (and the provider's) is aborted. */
async function newPage(options = {}) {
  const context = await browser.newContext({ bypassCSP: options.bypassCSP ?? false, ...options.context });
  const page = await context.newPage();
  const origins = [new URL(base).origin];
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === 'evil.localtest') {
      return route.fulfill({ contentType: 'text/html', body: options.evil ?? '<p>evil</p>' });
    }
    if (url.hostname === 'app.localtest') {
      return route.fulfill({ contentType: 'text/html', body: '<p>the app</p>' });
    }
    if (origins.includes(url.origin) || ['127.0.0.1', 'localhost'].includes(url.hostname) || url.protocol === 'data:') {
      return route.continue();
    }
    return route.abort();
  });
  return { context, page };
}

const checked = new Set();

/** axe-core on the current page (no serious or critical violation) and two screenshots. */
async function inspect(page, name) {
  if (checked.has(name)) return;
  checked.add(name);
  // axe is injected into a copy of the page in a context without CSP (the pages' CSP rightly
  // refuses injected scripts); the markup is the same.
  const html = await page.content();
  const { context, page: copy } = await newPage({ bypassCSP: true });
  await copy.goto(page.url());
  await copy.setContent(html, { waitUntil: 'load' });
  await copy.addStyleTag({ content: readFileSync(join(root, 'crates', 'axum-users-pages', 'static', 'pages.css'), 'utf8') });
  await copy.addScriptTag({ path: axePath });
  const result = await copy.evaluate(async () => globalThis.axe.run());
  await context.close();
  const bad = result.violations.filter((v) => ['serious', 'critical'].includes(v.impact));
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`), [], `axe on ${name}`);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: join(shots, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.screenshot({ path: join(shots, `${name}-360.png`), fullPage: true });
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scroll <= 360, `${name} fits 360 px (scrollWidth ${scroll})`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

/** The newest mail to `to` whose text has `path?token=`: the link's token. */
async function mailedToken(to, path) {
  const folder = join(dir, 'mail');
  for (let i = 0; i < 100; i += 1) {
    const files = existsSync(folder) ? readdirSync(folder).sort().reverse() : [];
    for (const file of files) {
      const text = readFileSync(join(folder, file), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/g, '=');
      if (!text.includes(to)) continue;
      const found = text.match(new RegExp(`(http://[^\\s"<>]+)${path.replace('?', '\\?')}\\?token=([A-Za-z0-9._%-]+)`));
      if (found) {
        assert.equal(found[1], `${base}/ui`, 'the link points at the hosted pages under public_url');
        return decodeURIComponent(found[2]);
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${path} mail to ${to}`);
}

/** Records the Origin header of the pages' own form posts. */
function recordOrigins(page) {
  const origins = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().includes('/ui/')) origins.push(r.headers().origin ?? '(none)');
  });
  return origins;
}

async function signIn(page, email, password, { returnTo } = {}) {
  const query = returnTo ? `?return_to=${encodeURIComponent(returnTo)}` : '';
  await page.goto(`${base}/ui/sign-in${query}`);
  await page.getByLabel('E-mail address').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Registers through the JSON API of the server at `origin` (the pages' own server by default). */
async function register(email, password, origin = base) {
  const r = await fetch(`${origin}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(r.status, 201, `register ${email}`);
}

const passwordA = 'Violet-Harbour-2931';
const passwordB = 'Quiet-Lantern-8472';
const passwordC = 'Amber-Glacier-5610';

test('sign up, verify, sign in, change the password, sign out, sign in again', { skip }, async () => {
  const { context, page } = await newPage();
  const origins = recordOrigins(page);
  const email = 'ada@example.com';
  await page.goto(`${base}/ui/sign-up`);
  await inspect(page, 'sign-up');
  await page.getByLabel('E-mail address').fill(email);
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Create the account' }).click();
  // The policy's reason is next to the field, tied to it.
  const field = page.getByLabel('Password');
  await assert.doesNotReject(field.waitFor());
  assert.equal(await field.getAttribute('aria-invalid'), 'true');
  const described = (await field.getAttribute('aria-describedby')).split(' ');
  assert.ok(described.includes('password-error'));
  assert.match(await page.locator('#password-error').innerText(), /refused/);
  await inspect(page, 'sign-up-error');
  await page.getByLabel('Password').fill(passwordA);
  await page.keyboard.press('Enter');
  await page.getByText('Check your mail').waitFor();
  await inspect(page, 'sign-up-done');

  const token = await mailedToken(email, '/verify');
  await page.goto(`${base}/ui/verify?token=${encodeURIComponent(token)}`);
  await inspect(page, 'verify');
  await page.getByRole('button', { name: 'Verify my address' }).click();
  await page.getByText('Your address is verified.').waitFor();

  await signIn(page, email, 'not-the-password');
  await page.getByText('The e-mail address or the password is wrong.').waitFor();
  await inspect(page, 'sign-in-error');
  await signIn(page, email, passwordA);
  await page.waitForURL(`${base}/ui/account`);
  await page.getByText(`Signed in as ${email}`).waitFor();
  await inspect(page, 'account');

  // Keyboard only: the password form is reached and sent with Tab and Enter.
  await page.locator('#current_password').focus();
  await page.keyboard.type(passwordA);
  await page.keyboard.press('Tab');
  await page.keyboard.type(passwordB);
  await page.keyboard.press('Enter');
  await page.getByText('Your password is changed.').waitFor();
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByText('You are signed out.').waitFor();
  await inspect(page, 'sign-in');
  await page.goto(`${base}/ui/account`);
  assert.match(page.url(), /\/ui\/sign-in\?return_to=/, 'signed out: the account page sends to sign in');

  await signIn(page, email, passwordA);
  await page.getByText('The e-mail address or the password is wrong.').waitFor();
  await signIn(page, email, passwordB);
  await page.waitForURL(`${base}/ui/account`);
  // Under Referrer-Policy: no-referrer Chromium sends Origin: null on the pages' own posts,
  // and they pass.
  assert.ok(origins.length > 5);
  assert.ok(origins.every((o) => o === 'null'), `origins of our posts: ${[...new Set(origins)]}`);
  await context.close();
});

test('forgot password, then reset from the mailed link', { skip }, async () => {
  const { context, page } = await newPage();
  const email = 'grace@example.com';
  await register(email, passwordA);
  await page.goto(`${base}/ui/forgot-password`);
  await inspect(page, 'forgot-password');
  await page.getByLabel('E-mail address').fill(email);
  await page.getByRole('button', { name: 'Send the link' }).click();
  await page.getByText('If an account exists for this address').waitFor();
  await inspect(page, 'forgot-password-done');
  const token = await mailedToken(email, '/reset-password');
  await page.goto(`${base}/ui/reset-password?token=${encodeURIComponent(token)}`);
  await inspect(page, 'reset-password');
  await page.getByLabel('New password').fill(passwordC);
  await page.getByRole('button', { name: 'Save the new password' }).click();
  await page.getByText('Your password is changed.').waitFor();
  // The link is spent.
  await page.goto(`${base}/ui/reset-password?token=${encodeURIComponent(token)}`);
  await page.getByLabel('New password').fill(passwordB);
  await page.getByRole('button', { name: 'Save the new password' }).click();
  await page.getByText('This link is invalid, expired or used already.').waitFor();
  await inspect(page, 'reset-password-used');
  await signIn(page, email, passwordC);
  await page.waitForURL(`${base}/ui/account`);
  await context.close();
});

test('one device signs another out', { skip }, async () => {
  const email = 'linus@example.com';
  await register(email, passwordA);
  const laptop = await newPage();
  const phone = await newPage({ context: { userAgent: 'Mozilla/5.0 (Linux; Android 14) Chrome/130.0 Mobile Safari/537.36' } });
  await signIn(laptop.page, email, passwordA);
  await laptop.page.waitForURL(`${base}/ui/account`);
  await signIn(phone.page, email, passwordA);
  await phone.page.waitForURL(`${base}/ui/account`);
  await phone.page.getByText('This device', { exact: true }).waitFor();
  const others = phone.page.getByRole('button', { name: /^Sign out this device/ });
  assert.equal(await others.count(), 1, 'the laptop is listed with a sign-out button');
  await inspect(phone.page, 'account-devices');
  await others.click();
  await phone.page.getByText('The device is signed out.').waitFor();
  await laptop.page.goto(`${base}/ui/account`);
  assert.match(laptop.page.url(), /\/ui\/sign-in/, 'the laptop is signed out');
  await phone.page.goto(`${base}/ui/account`);
  assert.match(phone.page.url(), /\/ui\/account$/, 'the phone is still signed in');
  await laptop.context.close();
  await phone.context.close();
});

test('a form posted from another site is refused', { skip }, async () => {
  const email = 'mallory-target@example.com';
  await register(email, passwordA);
  const evil = `<form id="f" method="post" action="${base}/ui/account/password">
    <input name="current_password" value="${passwordA}"><input name="password" value="Owned-By-Mallory-1">
    <input name="csrf" value="guessed"></form><script>document.getElementById('f').submit()</script>`;
  const { context, page } = await newPage({ evil });
  await signIn(page, email, passwordA);
  await page.waitForURL(`${base}/ui/account`);
  const answer = page.waitForResponse((r) => r.url() === `${base}/ui/account/password`);
  await page.goto('http://evil.localtest/');
  const response = await answer;
  assert.equal(response.status(), 403);
  await page.getByText('sent from another site').waitFor();
  await inspect(page, 'refused');
  // Nothing changed: the old password still signs in.
  const other = await newPage();
  await signIn(other.page, email, passwordA);
  await other.page.waitForURL(`${base}/ui/account`);
  await other.context.close();
  await context.close();
});

test('return_to goes only to allowed origins', { skip }, async () => {
  const email = 'ret@example.com';
  await register(email, passwordA);
  const { context, page } = await newPage();
  for (const target of ['http://evil.localtest/steal', '//evil.localtest/x', '/\\evil.localtest', 'https:evil.localtest']) {
    await signIn(page, email, passwordA, { returnTo: target });
    await page.waitForURL(`${base}/ui/account`);
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  }
  await signIn(page, email, passwordA, { returnTo: 'http://app.localtest/welcome' });
  await page.waitForURL('http://app.localtest/welcome');
  await context.close();
});

test('with no cookie setting (Secure cookies) the pages sign in on plain http://127.0.0.1', { skip }, async () => {
  // docs/pages.md: `cargo run` with no configuration serves working pages at
  // http://127.0.0.1:8000/ui; Chromium keeps Secure cookies from a loopback origin.
  const plainDir = mkdtempSync(join(tmpdir(), 'axum-users-secure-'));
  const port = await freePort();
  const plain = `http://127.0.0.1:${port}`;
  const child = await startServer(plainDir, {
    PATH: process.env.PATH ?? '',
    AXUM_USERS_BIND: `127.0.0.1:${port}`,
    AXUM_USERS_DATABASE_URL: `sqlite://${join(plainDir, 'users.db')}`,
    AXUM_USERS_ARGON2_MEMORY_KIB: '256',
    AXUM_USERS_ARGON2_ITERATIONS: '1',
  });
  try {
    const email = 'secure@example.com';
    await register(email, passwordA, plain);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${plain}/ui/sign-in`);
    await page.getByLabel('E-mail address').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(passwordA);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${plain}/ui/account`);
    await page.getByText(`Signed in as ${email}`).waitFor();
    const cookies = await context.cookies(plain);
    const names = cookies.map((c) => c.name);
    assert.ok(names.some((n) => n.startsWith('__Host-')), `the CSRF cookie is __Host- prefixed: ${names}`);
    assert.ok(names.includes('fastapiusersauth'), `the auth cookie is kept: ${names}`);
    assert.ok(cookies.every((c) => c.secure), 'every cookie is Secure');
    await context.close();
  } finally {
    child.kill();
    rmSync(plainDir, { recursive: true, force: true });
  }
});

test('French is chosen by Accept-Language', { skip }, async () => {
  const { context, page } = await newPage({ context: { locale: 'fr-FR' } });
  await page.goto(`${base}/ui/sign-in`);
  assert.equal(await page.getAttribute('html', 'lang'), 'fr');
  await page.getByRole('heading', { name: 'Connexion' }).waitFor();
  await inspect(page, 'sign-in-fr');
  // The password policy's reasons are French too.
  await page.goto(`${base}/ui/sign-up`);
  await page.getByLabel('Adresse e-mail').fill('francoise@example.com');
  await page.getByLabel('Mot de passe').fill('court');
  await page.getByRole('button', { name: 'Créer le compte' }).click();
  const reason = await page.locator('#password-error').innerText();
  assert.match(reason, /au moins 8 caractères/, reason);
  assert.doesNotMatch(reason, /Password should/, reason);
  await page.getByLabel('Mot de passe').fill('password123');
  await page.getByRole('button', { name: 'Créer le compte' }).click();
  assert.match(await page.locator('#password-error').innerText(), /trop courant/);
  await inspect(page, 'sign-up-error-fr');
  await context.close();
});

/** Signs in at the real OpenID provider as `accountId` and goes through its forms until the
 * browser is back on the pages. */
async function providerLogin(page, accountId, email) {
  await page.locator('input[name=account_id]').waitFor();
  await page.fill('input[name=account_id]', accountId);
  await page.fill('input[name=email]', email);
  // The provider's login form, then its consent form, until the pages answer.
  for (let i = 0; i < 5 && new URL(page.url()).origin !== new URL(base).origin; i += 1) {
    const button = page.locator('form button[type=submit]');
    if ((await button.count()) > 0) {
      await Promise.all([page.waitForNavigation(), button.first().click()]);
    } else {
      await page.waitForTimeout(200);
    }
  }
}

test('sign in with the real OpenID provider', { skip: skip || !oidcReady }, async () => {
  const { context, page } = await newPage();
  await page.goto(`${base}/ui/sign-in`);
  await page.getByRole('link', { name: 'Sign in with Corp' }).click();
  await providerLogin(page, 'oidc-user-1', 'oidc@example.com');
  await page.waitForURL(`${base}/ui/account`);
  await page.getByText('Signed in as oidc@example.com').waitFor();
  await page.getByText(`${issuerName}: oidc@example.com`).waitFor();
  await context.close();
});

test('link a provider account from the account page, sign in with it, unlink it', { skip: skip || !oidcReady }, async () => {
  const email = 'barbara@example.com';
  await register(email, passwordA);
  const { context, page } = await newPage();
  await signIn(page, email, passwordA);
  await page.waitForURL(`${base}/ui/account`);
  await page.getByText('No provider account is linked.').waitFor();
  await page.getByRole('link', { name: 'Link a Corp account' }).click();
  // The provider's address differs from the account's: linking is the signed-in user's choice.
  await providerLogin(page, 'oidc-link-1', 'barbara.at.work@example.com');
  await page.waitForURL(`${base}/ui/account?done=linked`);
  await page.getByText('The provider account is linked.').waitFor();
  await page.getByText(`${issuerName}: barbara.at.work@example.com`).waitFor();
  await inspect(page, 'account-linked');

  // Another browser signs in with the provider account: it is Barbara's.
  const other = await newPage();
  await other.page.goto(`${base}/ui/sign-in`);
  await other.page.getByRole('link', { name: 'Sign in with Corp' }).click();
  await providerLogin(other.page, 'oidc-link-1', 'barbara.at.work@example.com');
  await other.page.waitForURL(`${base}/ui/account`);
  await other.page.getByText(`Signed in as ${email}`).waitFor();
  await other.context.close();

  await page.goto(`${base}/ui/account`);
  await page.getByRole('button', { name: `Unlink ${issuerName} barbara.at.work@example.com` }).click();
  await page.waitForURL(`${base}/ui/account?done=unlinked`);
  await page.getByText('The provider account is unlinked.').waitFor();
  await page.getByText('No provider account is linked.').waitFor();
  await page.reload();
  assert.equal(await page.getByText('barbara.at.work@example.com').count(), 0, 'the link is gone');
  await context.close();
});

/** RFC 4648 base32 (no padding) to bytes. */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, '')) {
    const index = alphabet.indexOf(c);
    assert.ok(index >= 0, `not base32: ${c}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The RFC 6238 code (HMAC-SHA1, 30 s, 6 digits) of `secret` for the step `offset` steps from now. */
function totp(secret, offset = 0) {
  const counter = Math.floor(Date.now() / 1000 / 30) + offset;
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const digest = createHmac('sha1', base32Decode(secret)).update(message).digest();
  const at = digest[19] & 0x0f;
  const number = digest.readUInt32BE(at) & 0x7fffffff;
  return String(number % 1000000).padStart(6, '0');
}

test('two-step sign-in: set up on the account page, sign in with a code, then a recovery code, turn off', { skip }, async () => {
  const { context, page } = await newPage();
  const email = 'hedy@example.com';
  await register(email, passwordA);
  await signIn(page, email, passwordA);
  await page.waitForURL(`${base}/ui/account`);
  await page.getByText('Two-step sign-in is off.').waitFor();

  // A wrong password: said on its field.
  await page.locator('#mfa-current-password').fill('not-the-password');
  await page.getByRole('button', { name: 'Turn on two-step sign-in' }).click();
  await page.locator('#mfa-current-password-error').waitFor();
  assert.equal(await page.locator('#mfa-current-password').getAttribute('aria-invalid'), 'true');
  await inspect(page, 'account-two-step-error');

  await page.locator('#mfa-current-password').fill(passwordA);
  await page.getByRole('button', { name: 'Turn on two-step sign-in' }).click();
  await page.getByText('Scan this QR code').waitFor();
  assert.equal(await page.locator('.qr svg').count(), 1, 'the QR code, inline');
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await inspect(page, 'two-step-setup');

  await page.getByLabel('Code from the app').fill('000000');
  await page.getByRole('button', { name: 'Turn on', exact: true }).click();
  await page.locator('#code-error').waitFor();
  assert.equal(await page.locator('.qr').count(), 0, 'the QR code is not shown again');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on', exact: true }).click();
  await page.getByText('Store these codes somewhere safe').waitFor();
  const codes = await page.locator('.codes code').allInnerTexts();
  assert.equal(codes.length, 10);
  await inspect(page, 'recovery-codes');
  await page.getByRole('link', { name: 'I have stored them' }).click();
  await page.getByText('Recovery codes left: 10.').waitFor();
  assert.equal(await page.locator('.codes').count(), 0, 'the codes are shown once');
  assert.ok(!(await page.content()).includes(codes[0]));
  await inspect(page, 'account-two-step-on');

  // Sign in with a code (the next step's: the one that enabled it is spent).
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByText('You are signed out.').waitFor();
  await signIn(page, email, passwordA);
  await page.getByText('Your account asks for a second factor').waitFor();
  await page.getByLabel('Code from the app').fill(totp(secret, 1));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(`${base}/ui/account`);
  await page.getByText(`Signed in as ${email}`).waitFor();

  // Sign in with a recovery code: one fewer left.
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByText('You are signed out.').waitFor();
  await signIn(page, email, passwordA);
  await page.getByLabel('A recovery code').fill(codes[3]);
  await page.getByRole('button', { name: 'Use the recovery code' }).click();
  await page.waitForURL(`${base}/ui/account`);
  await page.getByText('Recovery codes left: 9.').waitFor();

  // Turn it off: neither proof is said on the code's field; the password does it.
  await page.getByRole('button', { name: 'Turn off two-step sign-in' }).click();
  await page.locator('#mfa-off-code-error').waitFor();
  await page.locator('#mfa-off-password').fill(passwordA);
  await page.getByRole('button', { name: 'Turn off two-step sign-in' }).click();
  await page.getByText('Two-step sign-in is off.').first().waitFor();
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await signIn(page, email, passwordA);
  await page.waitForURL(`${base}/ui/account`);
  await context.close();
});

/** The setup of two-step sign-in from the account page: its secret (the recovery codes are skipped). */
async function turnOnTwoStep(page, password) {
  await page.locator('#mfa-current-password').fill(password);
  await page.getByRole('button', { name: 'Turn on two-step sign-in' }).click();
  await page.getByText('Scan this QR code').waitFor();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on', exact: true }).click();
  await page.getByText('Store these codes somewhere safe').waitFor();
  await page.getByRole('link', { name: 'I have stored them' }).click();
  return secret;
}

/** A server of its own whose public URL (and passkey relying party) is http://localhost:PORT. */
async function startLocalhostServer() {
  const keyDir = mkdtempSync(join(tmpdir(), 'axum-users-passkeys-'));
  const port = await freePort();
  const local = `http://localhost:${port}`;
  const child = await startServer(keyDir, {
    PATH: process.env.PATH ?? '',
    AXUM_USERS_BIND: `127.0.0.1:${port}`,
    AXUM_USERS_PUBLIC_URL: local,
    AXUM_USERS_DATABASE_URL: `sqlite://${join(keyDir, 'users.db')}`,
    AXUM_USERS_COOKIE_SECURE: 'false',
    AXUM_USERS_ARGON2_MEMORY_KIB: '256',
    AXUM_USERS_ARGON2_ITERATIONS: '1',
  });
  return { keyDir, port, local, child };
}

test('passkeys: add on the account page, sign in with one, rename, second step, remove', { skip }, async () => {
  // WebAuthn needs a secure context: plain http only on localhost, so this server's public URL
  // (and the relying party) is http://localhost:PORT.
  const { keyDir, port, local, child } = await startLocalhostServer();
  const { context, page } = await newPage();
  try {
    const email = 'ida@example.com';
    await register(email, passwordA, `http://127.0.0.1:${port}`);
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
      },
    });
    const origins = recordOrigins(page);
    const apiOrigins = [];
    page.on('request', (r) => {
      if (r.method() === 'POST' && /passkey/.test(r.url()) && !r.url().includes('/ui/')) {
        apiOrigins.push(r.headers().origin ?? '(none)');
      }
    });

    await page.goto(`${local}/ui/sign-in`);
    await page.getByLabel('E-mail address').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(passwordA);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${local}/ui/account`);
    await page.getByText('You have no passkey yet.').waitFor();
    assert.equal(await page.locator('[data-passkey-nojs]').isHidden(), true, 'the script runs: no "needs JavaScript" note');
    await inspect(page, 'account-passkeys');

    // A wrong password: said in words next to the button, not as JSON.
    await page.locator('#passkey-add-password').fill('not-the-password');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    const status = page.locator('#passkey-add-status');
    await page.getByText('The current password is wrong.').waitFor();
    assert.doesNotMatch(await status.innerText(), /[{}]|UPDATE_USER/);
    assert.equal(await page.getByRole('button', { name: 'Add a passkey' }).getAttribute('aria-describedby'), 'passkey-add-status');
    await inspect(page, 'account-passkey-error');

    // Keyboard only: the password, Tab to the name, Enter sends the form.
    await page.locator('#passkey-add-password').fill('');
    await page.locator('#passkey-add-password').focus();
    await page.keyboard.type(passwordA);
    await page.keyboard.press('Tab');
    await page.keyboard.type('Laptop');
    await page.keyboard.press('Enter');
    // A first second factor comes with the ten recovery codes, shown this once.
    const codesBox = page.locator('#passkey-codes');
    await codesBox.waitFor();
    assert.equal(await codesBox.locator('ol li').count(), 10, 'ten recovery codes');
    const firstCode = (await codesBox.locator('ol li').first().innerText()).trim();
    assert.match(firstCode, /\S{6,}/);
    await inspect(page, 'account-passkey-codes');
    await page.getByRole('link', { name: 'I have stored them' }).click();
    await page.waitForURL(`${local}/ui/account?done=passkey_added`);
    await page.getByText('The passkey is added.').waitFor();
    await page.locator('.passkey strong', { hasText: 'Laptop' }).waitFor();
    await page.locator('.passkey', { hasText: 'never used' }).waitFor();
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'the authenticator keeps one credential');
    assert.equal(credentials[0].isResidentCredential, true, 'discoverable: it signs in without an e-mail');
    await inspect(page, 'account-passkey-added');

    // Sign out, then sign in with the passkey only (keyboard: focus, Enter).
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByText('You are signed out.').waitFor();
    const passkeyButton = page.getByRole('button', { name: 'Sign in with a passkey' });
    await passkeyButton.waitFor();
    await inspect(page, 'sign-in-passkey');
    await passkeyButton.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`${local}/ui/account`);
    await page.getByText(`Signed in as ${email}`).waitFor();
    await page.locator('.passkey', { hasText: 'last used' }).waitFor();

    // Rename: a plain form.
    const nameField = page.locator('.passkey input[name=name]');
    await nameField.fill('');
    await page.getByRole('button', { name: 'Rename: Laptop' }).click();
    await page.locator('.passkey .field-error').waitFor();
    await inspect(page, 'account-passkey-rename-error');
    await page.locator('.passkey input[name=name]').fill('Work laptop');
    await page.getByRole('button', { name: 'Rename: Laptop' }).click();
    await page.waitForURL(`${local}/ui/account?done=passkey_renamed`);
    await page.getByText('The passkey is renamed.').waitFor();
    await page.locator('.passkey strong', { hasText: 'Work laptop' }).waitFor();

    // The passkey is now the second factor of a password sign-in; a recovery code answers too.
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByText('You are signed out.').waitFor();
    await page.getByLabel('E-mail address').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(passwordA);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText('Your account asks for a second factor').waitFor();
    await page.getByRole('button', { name: 'Use a passkey' }).waitFor();
    await inspect(page, 'second-factor-passkey-only');
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.waitForURL(`${local}/ui/account`);

    // With two-step sign-in on, the passkey answers the second step of a password sign-in.
    const secret = await turnOnTwoStep(page, passwordA);
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByText('You are signed out.').waitFor();
    await page.getByLabel('E-mail address').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(passwordA);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText('Your account asks for a second factor').waitFor();
    const usePasskey = page.getByRole('button', { name: 'Use a passkey' });
    await usePasskey.waitFor();
    await inspect(page, 'second-factor-passkey');
    await usePasskey.click();
    await page.waitForURL(`${local}/ui/account`);
    await page.getByText(`Signed in as ${email}`).waitFor();

    // Turning two-step sign-in off with a code of the app (not the password).
    await page.locator('#mfa-off-code').fill(totp(secret, 1));
    await page.getByRole('button', { name: 'Turn off two-step sign-in' }).click();
    await page.waitForURL(`${local}/ui/account?done=two_step_off`);
    await page.getByText('Two-step sign-in is off.').first().waitFor();

    // Remove: the current password is asked for, said on its field when missing.
    const remove = page.getByRole('button', { name: 'Remove: Work laptop' });
    await remove.click();
    await page.locator('.passkey .field-error').waitFor();
    assert.match(await page.locator('.passkey .field-error').innerText(), /current password/);
    await inspect(page, 'account-passkey-remove-error');
    await page.locator('.passkey input[name=current_password]').fill(passwordA);
    await page.getByRole('button', { name: 'Remove: Work laptop' }).click();
    await page.waitForURL(`${local}/ui/account?done=passkey_removed`);
    await page.getByText('The passkey is removed.').waitFor();
    await page.getByText('You have no passkey yet.').waitFor();

    // The removed passkey signs nobody in: said in words.
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByText('You are signed out.').waitFor();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.locator('#passkey-status.field-error').waitFor();
    assert.match(await page.locator('#passkey-status').innerText(), /not accepted/);
    assert.match(page.url(), /\/ui\/sign-in/);

    assert.ok(origins.every((o) => o === 'null'), `origins of our form posts: ${[...new Set(origins)]}`);
    assert.ok(apiOrigins.length >= 6, `the script's posts: ${apiOrigins.length}`);
  } finally {
    await context.close();
    child.kill();
    rmSync(keyDir, { recursive: true, force: true });
  }
});

test('without JavaScript the passkey buttons stay hidden and the pages work', { skip }, async () => {
  const { keyDir, port, local, child } = await startLocalhostServer();
  const { context, page } = await newPage({ context: { javaScriptEnabled: false } });
  try {
    const email = 'nojs@example.com';
    await register(email, passwordA, `http://127.0.0.1:${port}`);
    await page.goto(`${local}/ui/sign-in`);
    assert.equal(await page.getByRole('button', { name: 'Sign in with a passkey' }).count(), 0);
    await page.getByLabel('E-mail address').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(passwordA);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${local}/ui/account`);
    await page.getByText('Adding a passkey needs JavaScript').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Add a passkey' }).count(), 0);
  } finally {
    await context.close();
    child.kill();
    rmSync(keyDir, { recursive: true, force: true });
  }
});
