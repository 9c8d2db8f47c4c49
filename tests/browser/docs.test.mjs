// Swagger UI at /docs in headless Chromium: the page loads with every host but the server
// blocked, lists every operation of /openapi.json, and a login through "Try it out" and the
// "Authorize" dialog work for the Bearer and the cookie backends.
//
// Starts the real server binary (AXUM_USERS_BIN, default target/debug/axum-users-server, or
// $CARGO_TARGET_DIR/debug/...) on a free port with SQLite in a temporary directory. Uses the
// system's Chromium (CHROMIUM, default /usr/bin/chromium), never a downloaded browser.
// Without Chromium, playwright-core or the binary it prints a SKIPPED: line and passes,
// unless BROWSER_TESTS_REQUIRED=1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || join(root, 'target');
const binary = process.env.AXUM_USERS_BIN || join(targetDir, 'debug', 'axum-users-server');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const required = process.env.BROWSER_TESTS_REQUIRED === '1';

let chromium = null;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  chromium = null;
}

const missing = [
  [chromium === null, 'playwright-core (npm ci --prefix tests/browser)'],
  [!existsSync(chromiumPath), `Chromium at ${chromiumPath} (apt-get install chromium)`],
  [!existsSync(binary), `the server binary ${binary} (cargo build -p axum-users-server)`],
].filter(([absent]) => absent).map(([, what]) => what);
if (missing.length > 0) {
  if (required) {
    throw new Error(`BROWSER_TESTS_REQUIRED=1 but missing: ${missing.join(', ')}`);
  }
  console.log(`SKIPPED: browser tests need ${missing.join(', ')}`);
}
const skip = missing.length > 0;

let server;
let base;
let dir;
let browser;

/** Starts the binary and resolves with its base URL, read from its "listening on" line. */
function startServer() {
  dir = mkdtempSync(join(tmpdir(), 'axum-users-browser-'));
  const env = {
    PATH: process.env.PATH ?? '',
    AXUM_USERS_BIND: '127.0.0.1:0',
    AXUM_USERS_DATABASE_URL: `sqlite://${join(dir, 'users.db')}`,
    AXUM_USERS_MAILER: `file:${join(dir, 'mail')}`,
    AXUM_USERS_COOKIE_SECURE: 'false',
    AXUM_USERS_ARGON2_MEMORY_KIB: '256',
    AXUM_USERS_ARGON2_ITERATIONS: '1',
  };
  server = spawn(binary, [], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolveUrl, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${log}`)), 30000);
    server.stderr.setEncoding('utf8');
    server.stderr.on('data', (chunk) => {
      log += chunk;
      const found = log.match(/listening on (\S+)/);
      if (found) {
        clearTimeout(timer);
        resolveUrl(found[1].replace(/\/$/, ''));
      }
    });
    server.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${log}`)));
  });
}

before(async () => {
  if (skip) return;
  base = await startServer();
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A page on which every request to another host than the server's is aborted and recorded. */
async function docsPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const blocked = [];
  const origin = new URL(base).origin;
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || new URL(url).origin === origin) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  await page.goto(`${base}/docs`);
  await page.locator('.opblock').first().waitFor();
  return { page, context, blocked };
}

async function register(email, password) {
  const r = await fetch(`${base}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(r.status, 201, await r.text());
}

/** The operation block of an operation id, expanded, with "Try it out" on. */
async function operation(page, tag, operationId) {
  const block = page.locator(`#operations-${tag}-${operationId}`);
  await block.locator('.opblock-summary').first().click();
  const tryOut = block.locator('button.try-out__btn', { hasText: 'Try it out' });
  if (await tryOut.count()) await tryOut.click();
  return block;
}

/** Clicks Execute and returns the status and body Swagger UI shows. */
async function execute(block) {
  await block.locator('button.execute').click();
  const status = block.locator('.live-responses-table tr.response .response-col_status').first();
  await status.waitFor();
  const body = block.locator('.live-responses-table tr.response .response-col_description pre');
  const text = (await body.count()) ? await body.first().innerText() : '';
  return { status: Number((await status.innerText()).trim()), body: text };
}

async function fillForm(block, fields) {
  for (const [name, value] of Object.entries(fields)) {
    await block.locator(`tr[data-property-name="${name}"] input`).first().fill(value);
  }
}

test('the docs page lists every operation of the document, with nothing from elsewhere', { skip }, async () => {
  const { page, context, blocked } = await docsPage();
  const doc = await (await fetch(`${base}/openapi.json`)).json();
  const expected = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) expected.push(`${method.toUpperCase()} ${path}`);
  }
  const shown = await page.locator('.opblock').evaluateAll((blocks) =>
    blocks.map((b) => {
      const method = b.querySelector('.opblock-summary-method')?.textContent?.trim();
      const path = b.querySelector('.opblock-summary-path')?.getAttribute('data-path');
      return `${method} ${path}`;
    }),
  );
  assert.ok(expected.length > 15, `only ${expected.length} operations`);
  assert.deepEqual([...shown].sort(), [...expected].sort());
  const screenshot = process.env.BROWSER_SCREENSHOT || join(tmpdir(), 'axum-users-docs.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(blocked, [], 'the page asked for other hosts');
  await context.close();
});

test('a login through Try it out returns a token, and Authorize signs the other calls', { skip }, async () => {
  await register('swagger@example.com', 'violet tundra orchestra 58');
  const { page, context, blocked } = await docsPage();

  const login = await operation(page, 'auth', 'auth_jwt_login_auth_jwt_login_post');
  await fillForm(login, { username: 'swagger@example.com', password: 'violet tundra orchestra 58' });
  const answer = await execute(login);
  assert.equal(answer.status, 200, answer.body);
  const token = JSON.parse(answer.body);
  assert.equal(token.token_type, 'bearer');
  assert.ok(token.access_token.length > 20, answer.body);

  // Authorize: the OAuth2 password flow against tokenUrl auth/jwt/login.
  await page.locator('.auth-wrapper button.authorize').click();
  const dialog = page.locator('.dialog-ux .modal-ux');
  const bearer = dialog.locator('.auth-container', { hasText: 'OAuth2PasswordBearer' });
  await bearer.locator('#oauth_username').fill('swagger@example.com');
  await bearer.locator('#oauth_password').fill('violet tundra orchestra 58');
  await bearer.locator('button.authorize').click();
  await bearer.locator('button', { hasText: 'Logout' }).waitFor();
  await dialog.locator('button.close-modal').click();

  const me = await operation(page, 'users', 'users_current_user_users_me_get');
  const mine = await execute(me);
  assert.equal(mine.status, 200, mine.body);
  assert.equal(JSON.parse(mine.body).email, 'swagger@example.com');
  assert.deepEqual(blocked, []);
  await context.close();
});

test('the cookie backend: a login through Try it out sets the cookie the next calls carry', { skip }, async () => {
  await register('cookie@example.com', 'amber glacier lantern 73');
  const { page, context, blocked } = await docsPage();
  const me = await operation(page, 'users', 'users_current_user_users_me_get');
  assert.equal((await execute(me)).status, 401);

  const login = await operation(page, 'auth', 'auth_cookie_login_auth_cookie_login_post');
  await fillForm(login, { username: 'cookie@example.com', password: 'amber glacier lantern 73' });
  assert.equal((await execute(login)).status, 204);
  const cookies = await context.cookies(base);
  assert.ok(cookies.some((c) => c.name === 'fastapiusersauth' && c.httpOnly), JSON.stringify(cookies));

  const again = await execute(me);
  assert.equal(again.status, 200, again.body);
  assert.equal(JSON.parse(again.body).email, 'cookie@example.com');
  assert.deepEqual(blocked, []);
  await context.close();
});
