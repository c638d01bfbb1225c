// The server is moving to the SDK's shapes (shared/CONTRACT.md, "The SDK's
// shapes"): both member lists in every page, timestamp in C2C
// readReceiptInfo and event items, events as {name, data}. The client must
// give apps the same thing then as now. A stand-in server answers in those
// shapes here; the real server's current shapes are covered by
// client.test.js.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { WebSocketServer } from 'ws';
import ReadReceipt from '../index.js';
import { token } from './server.js';

let http;
let wss;
let base;
const sockets = [];

before(async () => {
  http = createServer((req, res) => {
    let body = '';
    req.on('data', (b) => { body += b; });
    req.on('end', () => {
      const reply = (data) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ code: 0, data }));
      };
      const q = JSON.parse(body || '{}');
      if (req.url === '/v1/receipts/query') {
        reply({ messageList: q.messageList.map((m) => ({
          ID: m.ID, conversationType: m.conversationType, code: 0, message: '',
          readReceiptInfo: m.conversationType === 'C2C'
            ? { readCount: 0, unreadCount: 0, isPeerRead: true, timestamp: 1764000000 }
            : { readCount: 2, unreadCount: 3, isPeerRead: false },
        })) });
      } else if (req.url === '/v1/receipts/members') {
        reply({ messageID: q.message.ID, isCompleted: true, cursor: '', readUserIDList: ['bob', 'carol'], unreadUserIDList: [] });
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ code: 10004, message: 'no such endpoint' }));
      }
    });
  });
  wss = new WebSocketServer({ server: http, path: '/v1/events' });
  wss.on('connection', (ws) => sockets.push(ws));
  await new Promise((ok) => http.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${http.address().port}`;
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  wss.close();
  await new Promise((ok) => http.close(ok));
});

test('SDK-shaped answers come through the same: both lists, timestamps, {name, data} events', async () => {
  const client = ReadReceipt.create({ baseURL: base });
  const events = [];
  client.on(ReadReceipt.EVENT.MESSAGE_READ_RECEIPT_RECEIVED, (e) => events.push(e));
  const ready = new Promise((ok) => client.on(ReadReceipt.EVENT.SDK_READY, ok));
  await client.login({ userID: 'alice', userSig: token('alice') });
  await ready;

  const c2c = { ID: 'c1', conversationType: 'C2C', from: 'alice', to: 'bob' };
  const group = { ID: 'g1', conversationType: 'GROUP', to: 'team', from: 'alice' };
  await client.getMessageReadReceiptList([c2c]);
  // A server without delivery counts: reading implies delivered.
  assert.deepEqual(c2c.readReceiptInfo, { isPeerRead: true, isPeerDelivered: true, timestamp: 1764000000 });
  await client.getMessageReadReceiptList([group]);
  assert.deepEqual(group.readReceiptInfo, { readCount: 2, unreadCount: 3, deliveredCount: 2, undeliveredCount: 3 });

  const page = await client.getGroupMessageReadMemberList({ message: group, filter: 0, cursor: '', count: 10 });
  assert.deepEqual(page, { code: 0, data: { messageID: 'g1', isCompleted: true, cursor: '', readUserIDList: ['bob', 'carol'], unreadUserIDList: [],
    deliveredUserIDList: [], undeliveredUserIDList: [] } });

  const item = { groupID: '', userID: 'bob', messageID: 'c1', readCount: 0, unreadCount: 0, isPeerRead: true, timestamp: 1764000001 };
  sockets.at(-1).send(JSON.stringify({ name: 'MESSAGE_READ_RECEIPT_RECEIVED', data: [item] }));
  sockets.at(-1).send(JSON.stringify({ name: 'onMessageReadReceiptReceived', data: [{ ...item, timestamp: 1764000002 }] }));
  sockets.at(-1).send(JSON.stringify({ event: 'MESSAGE_READ_RECEIPT_RECEIVED', data: [{ ...item, timestamp: undefined }] }));
  sockets.at(-1).send(JSON.stringify({ name: 'SOMETHING_ELSE', data: [item] }));
  sockets.at(-1).send('not json');
  const end = Date.now() + 10000;
  while (events.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100));
  // Items without delivery counts get the read counts for them.
  const full = { ...item, deliveredCount: 0, undeliveredCount: 0, isPeerDelivered: true };
  assert.deepEqual(events, [
    { name: 'onMessageReadReceiptReceived', data: [full] },
    { name: 'onMessageReadReceiptReceived', data: [{ ...full, timestamp: 1764000002 }] },
    { name: 'onMessageReadReceiptReceived', data: [{ ...full, timestamp: undefined }] },
  ]);
  await client.destroy();
});

test('ReadReceipt.TYPES and EVENT carry the SDK\'s names and values', () => {
  assert.deepEqual(
    { ...ReadReceipt.TYPES },
    {
      CONV_C2C: 'C2C', CONV_GROUP: 'GROUP',
      GRP_WORK: 'Private', GRP_PUBLIC: 'Public', GRP_MEETING: 'ChatRoom', GRP_AVCHATROOM: 'AVChatRoom', GRP_COMMUNITY: 'Community',
      NET_STATE_CONNECTED: 'connected', NET_STATE_CONNECTING: 'connecting', NET_STATE_DISCONNECTED: 'disconnected',
    },
  );
  assert.equal(ReadReceipt.EVENT.MESSAGE_READ_RECEIPT_RECEIVED, 'onMessageReadReceiptReceived');
  assert.equal(ReadReceipt.EVENT.NET_STATE_CHANGE, 'netStateChange');
  assert.equal(ReadReceipt.EVENT.SDK_READY, 'sdkStateReady');
  assert.ok(Object.isFrozen(ReadReceipt.TYPES) && Object.isFrozen(ReadReceipt.EVENT));
});
