// The same flows as client.test.js in headless Chromium (Debian's, driven
// with playwright-core, which never downloads a browser of its own). The
// page loads the client as an ES module from readreceiptd itself: the copy
// the demo page uses, /web/readreceipt-client.js.

import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import * as flows from './flows.js';
import * as sc from './scenario.js';
import { Server } from './server.js';

const CANDIDATES = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter(Boolean);
const chromium = CANDIDATES.find((p) => existsSync(p));
const skip = chromium ? false : `no chromium at ${CANDIDATES.join(', ')}: the browser tests need one (apt-get install chromium)`;

let server;
let browser;
let page;
const problems = [];

before(async () => {
  if (skip) return;
  const { chromium: pw } = await import('playwright-core');
  server = await Server.start();
  // launch gives the browser a fresh profile of its own each time.
  browser = await pw.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    timeout: 60000,
  });
  page = await browser.newPage();
  page.on('pageerror', (e) => problems.push(String(e)));
  // A page of the server's own origin, so that the module and the API are
  // same-origin: the demo page, the one page whose Content-Security-Policy
  // lets scripts run (every other answer allows none). A page the browser
  // made up would not do: Chromium's local-network checks keep such a page
  // from opening sockets to 127.0.0.1.
  await page.goto(server.base + '/');
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function inPage(flow, env) {
  const r = await page.evaluate(flow, env);
  if (problems.length) throw new Error(`page errors: ${problems.join('; ')}`);
  return r;
}

const envFor = (prefix) => sc.prepare(server, prefix, server.base + '/web/readreceipt-client.js');

test('browser: group receipts: send, events, counts, member pages walked to the end', { skip }, async () => {
  const env = await envFor('web-group-');
  sc.checkGroup(await inPage(flows.groupFlow, env), env);
});

test('browser: C2C receipt', { skip }, async () => {
  const env = await envFor('web-c2c-');
  sc.checkC2C(await inPage(flows.c2cFlow, env), env);
});

test('browser: errors reject with codes', { skip }, async () => {
  const env = await envFor('web-err-');
  sc.checkErrors(await inPage(flows.errorFlow, env));
});

test('browser: beyond the SDK: delivery, private reads, marks, read times', { skip }, async () => {
  const env = await envFor('web-model-');
  sc.checkModel(await inPage(flows.modelFlow, env), env);
});

test('browser: the event socket reconnects after the server restarts, and stops on a refused token', { skip }, async () => {
  const env = await envFor('web-rc-');
  await inPage(flows.reconnectStart, env);
  await server.restart();
  sc.checkReconnected(await inPage(flows.reconnectAfter, env));
  await server.restart({ secret: 'another-secret-for-the-restart-0123' });
  sc.checkRefused(await inPage(flows.reconnectRefused, env));
});
