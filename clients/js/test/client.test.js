// The client in Node against a real readreceiptd, built from this
// repository and started by the test: the flows of flows.js, checked by
// scenario.js.

import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import * as flows from './flows.js';
import * as sc from './scenario.js';
import { Server } from './server.js';

const clientURL = pathToFileURL(fileURLToPath(new URL('../index.js', import.meta.url))).href;
let server;

before(async () => {
  server = await Server.start();
});
after(async () => {
  // A failed reconnect flow leaves its client reconnecting: stop it.
  if (globalThis.__rr) await globalThis.__rr.alice.destroy();
  if (server) await server.stop();
});

test('group receipts: send, events, counts, member pages walked to the end', async () => {
  const env = await sc.prepare(server, 'node-group-', clientURL);
  sc.checkGroup(await flows.groupFlow(env), env);
});

test('C2C receipt: isPeerRead before and after, the event, timestamp when the server sends it', async () => {
  const env = await sc.prepare(server, 'node-c2c-', clientURL);
  sc.checkC2C(await flows.c2cFlow(env), env);
});

test('errors reject with the server\'s codes or the client\'s, per-message codes stay per message', async () => {
  const env = await sc.prepare(server, 'node-err-', clientURL);
  sc.checkErrors(await flows.errorFlow(env));
});

test('beyond the SDK: delivery, private reads, own read state and events, marks, read times, delivered pages', async () => {
  const env = await sc.prepare(server, 'node-model-', clientURL);
  sc.checkModel(await flows.modelFlow(env), env);
});

test('the event socket reconnects after the server restarts, says so, and stops on a refused token', async () => {
  const env = await sc.prepare(server, 'node-rc-', clientURL);
  await flows.reconnectStart(env);
  await server.restart();
  sc.checkReconnected(await flows.reconnectAfter(env));
  await server.restart({ secret: 'another-secret-for-the-restart-0123' });
  sc.checkRefused(await flows.reconnectRefused(env));
});
