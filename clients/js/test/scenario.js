// What the Node and the browser tests share: the data each flow starts from
// (made on the real server as its host would) and what each flow must have
// seen. The flows themselves are in flows.js.

import assert from 'node:assert/strict';
import { freePort, token } from './server.js';

export const WAIT = 15000;

// The group: alice sends; the readers read m1 (bob reads m2 too); the other
// members read nothing.
const READERS = ['bob', 'carol', 'dave'];
const OTHERS = ['erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'olivia'];

// prepare makes a group and messages named with prefix (so that Node and
// browser runs on one server do not meet) and returns the flows' env.
export async function prepare(server, prefix, clientURL) {
  const groupID = `${prefix}team`;
  await server.createGroup(groupID, ['alice', ...READERS, ...OTHERS]);
  const messages = [];
  for (const n of [1, 2]) {
    messages.push(await server.track({ ID: `${prefix}g${n}`, conversationType: 'GROUP', to: groupID, from: 'alice' }));
  }
  const c2c = await server.track({ ID: `${prefix}c1`, conversationType: 'C2C', to: 'bob', from: 'alice' });
  const tokens = {};
  for (const u of ['alice', ...READERS, 'zed']) tokens[u] = server.token(u);
  tokens.forged = token('alice', { secret: 'not-the-server-secret-0123456789' });
  tokens.expired = server.token('alice', { ttlSeconds: -60 });
  return {
    clientURL, base: server.base, wait: WAIT, tokens,
    group: { groupID, messages, readers: READERS, others: OTHERS },
    c2c, untrackedID: `${prefix}never-tracked`,
    deadBase: `http://127.0.0.1:${await freePort()}`,
  };
}

export function checkGroup(r, env) {
  const [m1, m2] = env.group.messages;
  const recipients = READERS.length + OTHERS.length;
  assert.deepEqual(r.login, { code: 0, data: { repeatLogin: false } });
  assert.deepEqual(r.repeat, { code: 0, data: { repeatLogin: true } });
  assert.equal(r.sent.code, 0);
  assert.deepEqual(r.sent.data.messageList.map((x) => [x.ID, x.recorded, x.code]), [[m1.ID, true, 0], [m2.ID, true, 0]]);
  assert.deepEqual(r.again.data.messageList.map((x) => [x.ID, x.recorded, x.code]), [[m1.ID, false, 0]], 'a second receipt records nothing');

  // Events: {name, data} with the SDK's fields; bob's first receipt, then
  // one per new reader, never one for the repeated receipt.
  for (const e of r.events) {
    assert.equal(e.name, 'onMessageReadReceiptReceived');
    for (const it of e.data) {
      assert.deepEqual(Object.keys(it).sort(), ['deliveredCount', 'groupID', 'isPeerDelivered', 'isPeerRead', 'messageID', 'readCount', 'timestamp',
        'undeliveredCount', 'unreadCount', 'userID'].filter((k) => k !== 'timestamp' || k in it).sort());
      assert.equal(it.groupID, env.group.groupID);
      assert.equal(it.readCount + it.unreadCount, recipients);
      assert.equal(it.deliveredCount, it.readCount, 'nobody reported delivery: delivered are the readers');
      assert.equal(it.deliveredCount + it.undeliveredCount, recipients);
    }
  }
  const items = r.events.flatMap((e) => e.data);
  const m1Items = items.filter((it) => it.messageID === m1.ID);
  assert.deepEqual(m1Items.map((it) => [it.userID, it.readCount]), READERS.map((u, i) => [u, i + 1]));
  assert.deepEqual(items.filter((it) => it.messageID === m2.ID).map((it) => [it.userID, it.readCount, it.unreadCount]), [['bob', 1, recipients - 1]]);
  assert.equal(r.offCalls, 0, 'a handler taken off with off() is not called');
  assert.deepEqual(r.states.map((s) => s.state), ['connecting', 'connected', 'disconnected']);
  assert.equal(r.states[1].reconnected, false);
  assert.equal(r.afterLogout, 'disconnected');

  // Counts, on the Message objects given, as the SDK does.
  assert.ok(r.sameObjects, 'getMessageReadReceiptList resolves with the Message objects it was given');
  assert.deepEqual(r.infos, [
    { readCount: READERS.length, unreadCount: OTHERS.length, deliveredCount: READERS.length, undeliveredCount: OTHERS.length },
    { readCount: 1, unreadCount: recipients - 1, deliveredCount: 1, undeliveredCount: recipients - 1 },
  ]);

  // Pages: both lists in every page, the other one empty; walked to the
  // end they hold each member once.
  const walked = (pages, key, other) => {
    for (const p of pages) {
      assert.equal(p.code, 0);
      assert.equal(p.data.messageID, m1.ID);
      assert.ok(Array.isArray(p.data[key]) && p.data[key].length <= 2, `${key} is a page of at most 2`);
      assert.deepEqual(p.data[other], [], `${other} is there and empty`);
    }
    assert.ok(pages.slice(0, -1).every((p) => !p.data.isCompleted && p.data.cursor !== ''));
    assert.equal(pages.at(-1).data.isCompleted, true);
    return pages.flatMap((p) => p.data[key]);
  };
  assert.deepEqual(walked(r.readPages, 'readUserIDList', 'unreadUserIDList').sort(), [...READERS].sort());
  const unread = walked(r.unreadPages, 'unreadUserIDList', 'readUserIDList');
  assert.deepEqual([...unread].sort(), [...OTHERS].sort());
  assert.ok(r.unreadPages.length >= 4, `the unread list came in ${r.unreadPages.length} pages: paging was not exercised`);
}

export function checkC2C(r, env) {
  assert.equal(r.before.info.isPeerRead, false);
  assert.equal(r.before.isPeerRead, false);
  assert.deepEqual(r.sent.data.messageList.map((x) => [x.ID, x.recorded, x.code]), [[env.c2c.ID, true, 0]]);
  assert.equal(r.events.length, 1);
  const [it] = r.events[0].data;
  assert.equal(r.events[0].name, 'onMessageReadReceiptReceived');
  assert.equal(it.messageID, env.c2c.ID);
  assert.equal(it.userID, 'bob');
  assert.equal(it.groupID, '');
  assert.equal(it.isPeerRead, true);
  assert.equal(r.after.info.isPeerRead, true);
  assert.equal(r.after.info.isPeerDelivered, true, 'read implies delivered');
  assert.equal(r.before.info.isPeerDelivered, false);
  assert.equal(it.isPeerDelivered, true);
  assert.equal(r.after.isPeerRead, true);
  // timestamp: the server's read time in seconds once it sends one; until
  // then the key is there with undefined (dropped on its way out of a page).
  for (const ts of [it.timestamp, r.after.info.timestamp]) {
    if (ts !== undefined) {
      assert.ok(Number.isInteger(ts) && Math.abs(ts - Date.now() / 1000) < 600, `timestamp ${ts} is not now in seconds`);
    }
  }
}

export function checkErrors(r) {
  const rejected = (what, code) => {
    assert.equal(r[what].code, code, `${what}: ${JSON.stringify(r[what])}`);
    assert.ok(r[what].isError && r[what].hasMessage, `${what} rejects with an Error that has a message`);
  };
  rejected('beforeLogin', 92001);
  rejected('forged', 70002);
  rejected('expired', 70003);
  rejected('otherUser', 92005);
  rejected('noSig', 10004);
  rejected('stillLoggedOut', 92001);
  rejected('membersUntracked', 10062);
  rejected('badCursor', 91004);
  rejected('badFilter', 10004);
  rejected('bigPage', 91002);
  rejected('tooMany', 91001);
  rejected('mixed', 91003);
  rejected('notArray', 10004);
  // The server answers a message that is not the caller's as one that does
  // not exist (it tells nobody which IDs exist).
  rejected('notSender', 10062);
  rejected('afterLogout', 92001);
  rejected('afterDestroy', 92004);
  rejected('unreachable', 92002);
  rejected('overtaken', 92001);
  assert.equal(r.overtaken.userID, '', 'a login overtaken by logout leaves the client logged out');
  assert.equal(r.overtaken.netState, 'disconnected');
  assert.equal(r.perMessage[0].code, undefined);
  assert.equal(typeof r.perMessage[0].readCount, 'number');
  assert.equal(r.perMessage[1].code, 10062);
  assert.equal(r.perMessage[1].readCount, undefined, 'a message without receipt info gets no counts');
  assert.deepEqual(r.ownMessage, [91005]);
  // A reader outside the conversation learns no more than for a message
  // that does not exist.
  assert.deepEqual(r.outsider, [10062]);
}

export function checkReconnected(r) {
  const states = r.states.map((s) => s.state);
  assert.deepEqual(states.slice(0, 2), ['connecting', 'connected']);
  assert.equal(r.states[1].reconnected, false);
  const back = r.states.findIndex((s) => s.reconnected === true);
  assert.ok(back > 1 && r.states[back].state === 'connected', `states: ${JSON.stringify(r.states)}`);
  assert.ok(states.slice(2, back).every((s) => s === 'connecting'), 'between the loss and the reconnect the client is connecting');
  assert.equal(r.ready, 1, 'SDK_READY is emitted once per login, not on reconnects');
  assert.equal(r.events[0].data[0].userID, 'bob');
  assert.equal(r.info.readCount >= 1, true);
}

export function checkRefused(r) {
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0].code, 70002);
  assert.equal(r.netState, 'disconnected');
  assert.equal(r.userID, '');
}

export function checkModel(r, env) {
  const [m1, m2] = env.group.messages;
  const recipients = READERS.length + OTHERS.length;
  assert.deepEqual(r.delivery.data.messageList.map((x) => [x.ID, x.recorded, x.code]), [[m1.ID, true, 0]]);
  assert.equal(r.delivered[0].name, 'onMessageDeliveryReceiptReceived');
  assert.deepEqual(r.delivered[0].data.map((it) => [it.messageID, it.userID, it.readCount, it.deliveredCount, it.undeliveredCount]),
    [[m1.ID, 'dave', 0, 1, recipients - 1]]);
  assert.deepEqual(r.infoAfterDelivery, { readCount: 0, unreadCount: recipients, deliveredCount: 1, undeliveredCount: recipients - 1 });

  // Private: dave's read reaches alice as a delivery, his own devices as a read.
  assert.deepEqual(r.privateOn.data, { private: true });
  assert.deepEqual(r.privateNow.data, { private: true });
  assert.deepEqual(r.privateRead.data.messageList.map((x) => [x.ID, x.recorded, x.code]), [[m2.ID, true, 0]]);
  assert.deepEqual(r.delivered[1].data.map((it) => [it.messageID, it.readCount, it.deliveredCount]), [[m2.ID, 0, 1]]);
  assert.equal(r.own[0].name, 'onMessageReadBySelf');
  assert.deepEqual(r.own[0].data, [{ conversationID: 'GROUP' + env.group.groupID, messageIDList: [m2.ID], thread: '', mark: undefined }]);
  assert.deepEqual(r.state.data.messageList.map((s) => [s.ID, s.isRead, s.isPrivate, s.isDelivered, s.code]),
    [[m1.ID, false, false, true, 0], [m2.ID, true, true, true, 0]]);

  // The mark, public again: m1 read, alice gets the read event.
  assert.equal(r.mark.data.conversationID, 'GROUP' + env.group.groupID);
  assert.equal(r.mark.data.mark.messageID, m1.ID);
  assert.ok(Number.isInteger(r.mark.data.mark.time) && Math.abs(r.mark.data.mark.time - Date.now()) < 600000, `mark time ${r.mark.data.mark.time}`);
  assert.equal(r.mark.data.recordedCount, 1);
  assert.deepEqual(r.markAgain.data.mark, r.mark.data.mark);
  assert.deepEqual(r.reads[0].data.map((it) => [it.messageID, it.userID, it.readCount, it.deliveredCount]), [[m1.ID, 'dave', 1, 1]]);
  assert.deepEqual(r.own[1].data[0].mark, r.mark.data.mark);
  assert.deepEqual(r.own[1].data[0].messageIDList, [m1.ID]);

  assert.deepEqual(r.times.data.userList.map((u) => [u.userID, u.isRead]), [['dave', true], ['carol', false]]);
  assert.equal(r.times.data.userList[1].timestamp, undefined);
  assert.deepEqual(r.deliveredPage.data.deliveredUserIDList, ['dave']);
  assert.deepEqual(r.deliveredPage.data.readUserIDList, []);
  assert.equal(r.undeliveredPage.data.undeliveredUserIDList.length, recipients - 1);
  assert.equal(r.badPrivacy, 10004);
  assert.equal(r.markWithout, 10004);
  assert.equal(r.markUnknown, 10062);
}
