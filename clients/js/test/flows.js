// The flows the tests go through, in Node and in Chromium alike.
//
// Each flow is a self-contained async function of one JSON argument, env:
// it closes over nothing in this module, so the browser test can hand its
// source to a page. It imports the client from env.clientURL (a file URL
// in Node, the copy readreceiptd serves in the browser), talks to the real
// server at env.base with the tokens in env.tokens, and returns what it
// saw; the tests assert on that. Flows that span a server restart keep
// their clients in globalThis.__rr between steps.

// groupFlow: bob reads alice's group messages; alice gets the events, the
// counts, and pages through who has and has not read.
export async function groupFlow(env) {
  const { default: ReadReceipt } = await import(env.clientURL);
  const { EVENT } = ReadReceipt;
  const until = async (what, pred) => {
    const end = Date.now() + env.wait;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const [m1, m2] = env.group.messages;
  const alice = ReadReceipt.create({ baseURL: env.base });
  const events = [];
  const states = [];
  let ready = 0;
  let offCalls = 0;
  const offHandler = () => { offCalls++; };
  alice.on(EVENT.MESSAGE_READ_RECEIPT_RECEIVED, (e) => events.push(e));
  alice.on(EVENT.MESSAGE_READ_RECEIPT_RECEIVED, offHandler);
  alice.off(EVENT.MESSAGE_READ_RECEIPT_RECEIVED, offHandler);
  alice.on(EVENT.NET_STATE_CHANGE, (e) => states.push(e.data));
  alice.on(EVENT.SDK_READY, () => { ready++; });
  const login = await alice.login({ userID: 'alice', userSig: env.tokens.alice });
  const repeat = await alice.login({ userID: 'alice', userSig: env.tokens.alice });
  await until('SDK_READY', () => ready === 1);

  const readers = {};
  for (const u of env.group.readers) {
    const c = ReadReceipt.create({ baseURL: env.base });
    await c.login({ userID: u, userSig: env.tokens[u] });
    readers[u] = c;
  }
  const bob = readers.bob;
  const sent = await bob.sendMessageReadReceipt([m1, m2]);
  await until('bob\'s receipt event', () => events.some((e) => e.data.some((it) => it.messageID === m2.ID)));
  const again = await bob.sendMessageReadReceipt([m1]);
  for (const u of env.group.readers) {
    if (u !== 'bob') await readers[u].sendMessageReadReceipt([m1]);
  }
  const want = env.group.readers.length;
  await until(`readCount ${want}`, () => events.some((e) => e.data.some((it) => it.messageID === m1.ID && it.readCount === want)));

  const list = [{ ...m1 }, { ...m2 }];
  const got = await alice.getMessageReadReceiptList(list);

  const walk = async (filter) => {
    const pages = [];
    let cursor = '';
    for (;;) {
      const r = await alice.getGroupMessageReadMemberList({ message: m1, filter, cursor, count: 2 });
      pages.push(r);
      if (r.data.isCompleted || pages.length > 50) return pages;
      cursor = r.data.cursor;
    }
  };
  const readPages = await walk(0);
  const unreadPages = await walk(1);

  for (const c of Object.values(readers)) await c.destroy();
  await alice.logout();
  const afterLogout = alice.netState;
  await alice.destroy();
  return {
    login, repeat, sent, again, events, offCalls, states, afterLogout,
    infos: got.data.messageList.map((m) => m.readReceiptInfo),
    sameObjects: got.code === 0 && got.data.messageList[0] === list[0] && got.data.messageList[1] === list[1],
    readPages, unreadPages,
  };
}

// c2cFlow: alice's C2C message to bob, unread and then read.
export async function c2cFlow(env) {
  const { default: ReadReceipt } = await import(env.clientURL);
  const { EVENT } = ReadReceipt;
  const until = async (what, pred) => {
    const end = Date.now() + env.wait;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const m = env.c2c;
  const alice = ReadReceipt.create({ baseURL: env.base });
  const bob = ReadReceipt.create({ baseURL: env.base });
  const events = [];
  alice.on(EVENT.MESSAGE_READ_RECEIPT_RECEIVED, (e) => events.push(e));
  let ready = false;
  alice.on(EVENT.SDK_READY, () => { ready = true; });
  await alice.login({ userID: 'alice', userSig: env.tokens.alice });
  await bob.login({ userID: 'bob', userSig: env.tokens.bob });
  await until('SDK_READY', () => ready);
  const before = { ...m };
  await alice.getMessageReadReceiptList([before]);
  const sent = await bob.sendMessageReadReceipt([m]);
  await until('the C2C event', () => events.length > 0);
  const after = { ...m };
  await alice.getMessageReadReceiptList([after]);
  await alice.destroy();
  await bob.destroy();
  return {
    before: { info: before.readReceiptInfo, isPeerRead: before.isPeerRead },
    after: { info: after.readReceiptInfo, isPeerRead: after.isPeerRead },
    sent, events,
    // JSON drops undefined: say whether the key is there.
    eventHasTimestampKey: events.length > 0 && 'timestamp' in events[0].data[0],
    infoHasTimestampKey: after.readReceiptInfo && 'timestamp' in after.readReceiptInfo,
  };
}

// errorFlow: every failure rejects with its code, or reports it per message.
export async function errorFlow(env) {
  const { default: ReadReceipt } = await import(env.clientURL);
  const codeOf = async (p) => {
    try {
      await p;
    } catch (e) {
      return { code: e.code, isError: e instanceof Error, hasMessage: typeof e.message === 'string' && e.message !== '' };
    }
    return { code: 'resolved' };
  };
  const [m1] = env.group.messages;
  const alice = ReadReceipt.create({ baseURL: env.base });
  const out = {};
  out.beforeLogin = await codeOf(alice.getMessageReadReceiptList([m1]));
  out.forged = await codeOf(alice.login({ userID: 'alice', userSig: env.tokens.forged }));
  out.expired = await codeOf(alice.login({ userID: 'alice', userSig: env.tokens.expired }));
  out.otherUser = await codeOf(alice.login({ userID: 'alice', userSig: env.tokens.bob }));
  out.noSig = await codeOf(alice.login({ userID: 'alice' }));
  out.stillLoggedOut = await codeOf(alice.sendMessageReadReceipt([m1]));
  await alice.login({ userID: 'alice', userSig: env.tokens.alice });
  const untracked = { ID: env.untrackedID, conversationType: 'GROUP', to: env.group.groupID, from: 'alice' };
  const q = await alice.getMessageReadReceiptList([m1, untracked]);
  out.perMessage = q.data.messageList.map((m) => m.readReceiptInfo);
  out.membersUntracked = await codeOf(alice.getGroupMessageReadMemberList({ message: untracked, filter: 0, cursor: '', count: 10 }));
  out.badCursor = await codeOf(alice.getGroupMessageReadMemberList({ message: m1, filter: 0, cursor: 'not-a-cursor', count: 10 }));
  out.badFilter = await codeOf(alice.getGroupMessageReadMemberList({ message: m1, filter: 7, cursor: '', count: 10 }));
  out.bigPage = await codeOf(alice.getGroupMessageReadMemberList({ message: m1, filter: 0, cursor: '', count: 101 }));
  const many = Array.from({ length: 31 }, (_, i) => ({ ID: `many-${i}`, conversationType: 'GROUP', to: env.group.groupID, from: 'alice' }));
  out.tooMany = await codeOf(alice.sendMessageReadReceipt(many));
  out.mixed = await codeOf(alice.sendMessageReadReceipt([m1, env.c2c]));
  out.notArray = await codeOf(alice.sendMessageReadReceipt('m1'));
  out.ownMessage = (await alice.sendMessageReadReceipt([m1])).data.messageList.map((r) => r.code);
  const bob = ReadReceipt.create({ baseURL: env.base });
  await bob.login({ userID: 'bob', userSig: env.tokens.bob });
  out.notSender = await codeOf(bob.getGroupMessageReadMemberList({ message: m1, filter: 0, cursor: '', count: 10 }));
  out.outsider = await (async () => {
    const o = ReadReceipt.create({ baseURL: env.base });
    await o.login({ userID: 'zed', userSig: env.tokens.zed });
    const r = await o.sendMessageReadReceipt([m1]);
    await o.destroy();
    return r.data.messageList.map((x) => x.code);
  })();
  await bob.destroy();
  await alice.logout();
  out.afterLogout = await codeOf(alice.getMessageReadReceiptList([m1]));
  await alice.destroy();
  out.afterDestroy = await codeOf(alice.login({ userID: 'alice', userSig: env.tokens.alice }));
  out.overtaken = await (async () => {
    const c = ReadReceipt.create({ baseURL: env.base });
    const p = c.login({ userID: 'alice', userSig: env.tokens.alice });
    await c.logout();
    const r = await codeOf(p);
    r.userID = c.userID;
    r.netState = c.netState;
    await c.destroy();
    return r;
  })();
  out.unreachable = await codeOf((async () => {
    const c = ReadReceipt.create({ baseURL: env.deadBase });
    await c.login({ userID: 'alice', userSig: env.tokens.alice });
  })());
  return out;
}

// reconnectStart: alice is logged in and live, with short reconnect delays.
export async function reconnectStart(env) {
  const { default: ReadReceipt } = await import(env.clientURL);
  const { EVENT } = ReadReceipt;
  const st = { events: [], states: [], errors: [], ready: 0 };
  st.alice = ReadReceipt.create({ baseURL: env.base, reconnect: { minDelay: 50, maxDelay: 400 } });
  st.alice.on(EVENT.MESSAGE_READ_RECEIPT_RECEIVED, (e) => st.events.push(e));
  st.alice.on(EVENT.NET_STATE_CHANGE, (e) => st.states.push(e.data));
  st.alice.on(EVENT.SDK_READY, () => { st.ready++; });
  st.alice.on(EVENT.ERROR, (e) => st.errors.push(e.data));
  globalThis.__rr = st;
  await st.alice.login({ userID: 'alice', userSig: env.tokens.alice });
  const end = Date.now() + env.wait;
  while (st.alice.netState !== ReadReceipt.TYPES.NET_STATE_CONNECTED) {
    if (Date.now() > end) throw new Error('alice never connected');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { states: st.states };
}

// reconnectAfter: once the server is back, the client says it reconnected,
// and a receipt sent now reaches alice as an event.
export async function reconnectAfter(env) {
  const { default: ReadReceipt } = await import(env.clientURL);
  const st = globalThis.__rr;
  const until = async (what, pred) => {
    const end = Date.now() + env.wait;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; states ${JSON.stringify(st.states)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until('the reconnected event', () => st.states.some((s) => s.reconnected === true));
  const bob = ReadReceipt.create({ baseURL: env.base });
  await bob.login({ userID: 'bob', userSig: env.tokens.bob });
  const sent = await bob.sendMessageReadReceipt([env.group.messages[1]]);
  if (sent.data.messageList[0].code !== 0) throw new Error(`bob's receipt after the restart: ${JSON.stringify(sent.data)}`);
  await until('the event after the reconnect', () => st.events.length > 0);
  await bob.destroy();
  // Refreshing counts, as an app does on the reconnected event, works.
  const m = { ...env.group.messages[1] };
  await st.alice.getMessageReadReceiptList([m]);
  return { states: st.states, events: st.events, ready: st.ready, info: m.readReceiptInfo };
}

// reconnectRefused: the server came back with another secret: the client
// stops retrying and reports the token's failure.
export async function reconnectRefused(env) {
  const st = globalThis.__rr;
  const end = Date.now() + env.wait;
  while (st.errors.length === 0) {
    if (Date.now() > end) throw new Error(`no ERROR event; states ${JSON.stringify(st.states)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const out = { errors: st.errors, netState: st.alice.netState, userID: st.alice.userID };
  await st.alice.destroy();
  return out;
}

// modelFlow: readreceiptd's calls beyond the SDK's. Dave's device reports
// m1 delivered; dave, private, reads m2 (alice sees it delivered, dave's
// other device is told he read it); dave, public again, marks the
// conversation read up to m1; alice asks who read m1 when and who it
// reached. Dave's receipts are public again when the flow ends, whatever
// happens (the other flows need them so).
export async function modelFlow(env) {
  const { default: ReadReceipt } = await import(env.clientURL);
  const { EVENT } = ReadReceipt;
  const until = async (what, pred) => {
    const end = Date.now() + env.wait;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const [m1, m2] = env.group.messages;
  const alice = ReadReceipt.create({ baseURL: env.base });
  const dave = ReadReceipt.create({ baseURL: env.base });
  const davePhone = ReadReceipt.create({ baseURL: env.base });
  const delivered = [];
  const reads = [];
  const own = [];
  alice.on(EVENT.MESSAGE_DELIVERY_RECEIPT_RECEIVED, (e) => delivered.push(e));
  alice.on(EVENT.MESSAGE_READ_RECEIPT_RECEIVED, (e) => reads.push(e));
  davePhone.on(EVENT.MESSAGE_READ_BY_SELF, (e) => own.push(e));
  let ready = 0;
  for (const c of [alice, davePhone]) c.on(EVENT.SDK_READY, () => { ready++; });
  await alice.login({ userID: 'alice', userSig: env.tokens.alice });
  await dave.login({ userID: 'dave', userSig: env.tokens.dave });
  await davePhone.login({ userID: 'dave', userSig: env.tokens.dave });
  await until('both connections', () => ready === 2);

  const out = {};
  try {
    await modelSteps();
  } finally {
    await dave.setReceiptsPrivate(false).catch(() => {});
    for (const c of [alice, dave, davePhone]) await c.destroy();
  }
  return { ...out, delivered, reads, own };

  async function modelSteps() {
    out.delivery = await dave.sendMessageDeliveryReceipt([m1]);
    await until('the delivery event', () => delivered.length > 0);
    const q1 = [{ ...m1 }];
    await alice.getMessageReadReceiptList(q1);
    out.infoAfterDelivery = q1[0].readReceiptInfo;

    out.privateOn = await dave.setReceiptsPrivate(true);
    out.privateNow = await dave.getReceiptsPrivate();
    out.privateRead = await dave.sendMessageReadReceipt([m2]);
    await until('dave\'s own read event', () => own.length > 0);
    await until('the delivery event of the private read', () => delivered.length > 1);
    out.state = await dave.getMessageReadState([m1, m2]);
    await dave.setReceiptsPrivate(false);

    out.mark = await dave.markConversationRead({ message: m1 });
    out.markAgain = await dave.getReadMark({ conversationID: 'GROUP' + env.group.groupID });
    await until('dave\'s read event', () => reads.length > 0);
    await until('the mark\'s own event', () => own.length > 1);
    out.times = await alice.getMessageReadTimes({ message: m1, userIDList: ['dave', 'carol'] });
    out.deliveredPage = await alice.getGroupMessageReadMemberList({ message: m1, filter: 2, cursor: '', count: 100 });
    out.undeliveredPage = await alice.getGroupMessageReadMemberList({ message: m1, filter: 3, cursor: '', count: 100 });
    const codeOf = async (p) => {
      try { await p; } catch (e) { return e.code; }
      return 'resolved';
    };
    out.badPrivacy = await codeOf(dave.setReceiptsPrivate('yes'));
    out.markWithout = await codeOf(dave.markConversationRead({ messageID: m1.ID }));
    out.markUnknown = await codeOf(dave.markConversationRead({ conversationID: 'GROUP' + env.group.groupID, messageID: env.untrackedID }));
  }
}
