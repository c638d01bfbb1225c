// @readreceipt/client: a readreceiptd client for browsers and Node 20+ whose
// calls, constants and events have the names of the IM web SDK's
// read-receipt feature, so that code written for the SDK ports by
// search-and-replace (TIM -> ReadReceipt, tim -> client).
//
// Plain ES module, no build step. It needs fetch and WebSocket: browsers have
// both; Node 20 has fetch, and the client loads the `ws` package for the
// WebSocket when globalThis.WebSocket is missing.
//
// Under the calls are readreceiptd's endpoints: POST /v1/receipts,
// /v1/receipts/query and /v1/receipts/members, and the WebSocket
// GET /v1/events (see cmd/readreceiptd/openapi.yaml). Beyond the SDK, the
// client has readreceiptd's delivery receipts (/v1/receipts/delivered),
// read-up-to marks (/v1/conversations/read-mark), private receipts
// (/v1/me/privacy), the user's own read state (/v1/receipts/state) and
// read times (/v1/receipts/read-times). The client turns what
// the server answers into the SDK's shapes, and keeps doing so when the
// server answers in those shapes itself.

/** The SDK's event names and values. */
export const EVENT = Object.freeze({
  /** The first event connection after login is open. */
  SDK_READY: 'sdkStateReady',
  /** After logout or destroy. */
  SDK_NOT_READY: 'sdkStateNotReady',
  /** Receipts for messages the logged-in user sent: data is an array of items. */
  MESSAGE_READ_RECEIPT_RECEIVED: 'onMessageReadReceiptReceived',
  /**
   * Messages the logged-in user sent reached more recipients' devices: data
   * is an array of items, in the shape of MESSAGE_READ_RECEIPT_RECEIVED's.
   */
  MESSAGE_DELIVERY_RECEIPT_RECEIVED: 'onMessageDeliveryReceiptReceived',
  /**
   * The logged-in user read messages on a device (this one or another, a
   * private read too): data is an array of { conversationID,
   * messageIDList, thread, mark }, mark set by markConversationRead.
   */
  MESSAGE_READ_BY_SELF: 'onMessageReadBySelf',
  /**
   * The event connection's state changed: data is { state, reconnected }.
   * state is TYPES.NET_STATE_CONNECTED, _CONNECTING or _DISCONNECTED;
   * reconnected is true when the connection is open again after it was
   * lost: events may have been missed meanwhile, so refresh the counts then.
   */
  NET_STATE_CHANGE: 'netStateChange',
  /** The client gave up: data is { code, message } (e.g. the token expired). */
  ERROR: 'error',
});

/** The SDK's constants for conversation types, group types and net states. */
export const TYPES = Object.freeze({
  CONV_C2C: 'C2C',
  CONV_GROUP: 'GROUP',
  GRP_WORK: 'Private',
  GRP_PUBLIC: 'Public',
  GRP_MEETING: 'ChatRoom',
  GRP_AVCHATROOM: 'AVChatRoom',
  GRP_COMMUNITY: 'Community',
  NET_STATE_CONNECTED: 'connected',
  NET_STATE_CONNECTING: 'connecting',
  NET_STATE_DISCONNECTED: 'disconnected',
});

/**
 * Codes of failures the client finds itself. The server's codes (10062,
 * 10007, 91001, 70003, ...) come through unchanged.
 */
export const CODES = Object.freeze({
  /** An argument is missing or of the wrong kind (the server's code for the same). */
  INVALID_PARAMETER: 10004,
  /** A call that needs login was made before login or after logout. */
  NOT_LOGGED_IN: 92001,
  /** The server could not be reached. */
  NETWORK: 92002,
  /** The server answered something that is not readreceiptd's JSON. */
  BAD_RESPONSE: 92003,
  /** The client was destroyed. */
  DESTROYED: 92004,
  /** The userSig names another user than userID. */
  USER_MISMATCH: 92005,
});

/** What a call rejects with: an Error with the numeric code of the failure. */
export class ReadReceiptError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ReadReceiptError';
    this.code = code;
  }
}

// The server's names of its event messages, and the client's for each.
const SERVER_RECEIPT_EVENT = 'MESSAGE_READ_RECEIPT_RECEIVED';
const SERVER_EVENTS = Object.freeze({
  [SERVER_RECEIPT_EVENT]: EVENT.MESSAGE_READ_RECEIPT_RECEIVED,
  MESSAGE_DELIVERY_RECEIPT_RECEIVED: EVENT.MESSAGE_DELIVERY_RECEIPT_RECEIVED,
  MESSAGE_READ_BY_SELF: EVENT.MESSAGE_READ_BY_SELF,
});
// The message of the token check (see #checkToken).
const CHECK_MESSAGE = Object.freeze({ ID: 'readreceipt-client-login-check', conversationType: 'GROUP', to: 'readreceipt-client-login-check' });
// Token failures (HTTP 401): the token must be renewed, retrying will not help.
const TOKEN_CODES = new Set([70001, 70002, 70003, 70004]);

function fail(code, message) {
  return new ReadReceiptError(code, message);
}

// The part of an SDK Message the server needs.
function ref(m, where) {
  if (m === null || typeof m !== 'object') {
    throw fail(CODES.INVALID_PARAMETER, `${where} is not a Message object`);
  }
  return { ID: m.ID, conversationType: m.conversationType, to: m.to, from: m.from };
}

function refs(messageList) {
  if (!Array.isArray(messageList)) {
    throw fail(CODES.INVALID_PARAMETER, 'messageList must be an array of Message objects');
  }
  return messageList.map((m, i) => ref(m, `messageList[${i}]`));
}

function numberOr(v, dflt) {
  return typeof v === 'number' ? v : dflt;
}

// normalizeEventItem returns an event item in the SDK's shape, with the
// delivery counts. timestamp is the server's (seconds) when it sends one
// (C2C items), else undefined. A server that sends no delivery counts gets
// the read counts for them: reading implies delivered.
export function normalizeEventItem(it) {
  const readCount = numberOr(it.readCount, 0);
  const unreadCount = numberOr(it.unreadCount, 0);
  const isPeerRead = it.isPeerRead === true;
  return {
    groupID: typeof it.groupID === 'string' ? it.groupID : '',
    userID: typeof it.userID === 'string' ? it.userID : '',
    messageID: it.messageID,
    readCount,
    unreadCount,
    isPeerRead,
    deliveredCount: numberOr(it.deliveredCount, readCount),
    undeliveredCount: numberOr(it.undeliveredCount, unreadCount),
    isPeerDelivered: typeof it.isPeerDelivered === 'boolean' ? it.isPeerDelivered : isPeerRead,
    timestamp: typeof it.timestamp === 'number' ? it.timestamp : undefined,
  };
}

// normalizeMark returns a read mark { messageID, time } (time in Unix
// milliseconds), or undefined.
function normalizeMark(m) {
  if (!m || typeof m !== 'object') return undefined;
  return { messageID: typeof m.messageID === 'string' ? m.messageID : '', time: numberOr(m.time, 0) };
}

// normalizeOwnReadItem returns an item of EVENT.MESSAGE_READ_BY_SELF.
export function normalizeOwnReadItem(it) {
  return {
    conversationID: typeof it.conversationID === 'string' ? it.conversationID : '',
    messageIDList: Array.isArray(it.messageIDList) ? it.messageIDList.filter((id) => typeof id === 'string') : [],
    thread: typeof it.thread === 'string' ? it.thread : '',
    mark: normalizeMark(it.mark),
  };
}

// normalizeEventMessage turns one text message of /v1/events into
// { name, data }, or returns null for a message that is not an event the
// client knows. It reads both today's {"event": ...} and the SDK's
// {"name": ...}, with the server's names or the client's.
export function normalizeEventMessage(msg) {
  if (msg === null || typeof msg !== 'object' || !Array.isArray(msg.data)) return null;
  const wire = msg.name !== undefined ? msg.name : msg.event;
  const name = Object.hasOwn(SERVER_EVENTS, wire) ? SERVER_EVENTS[wire]
    : Object.values(SERVER_EVENTS).includes(wire) ? wire : null;
  if (name === null) return null;
  const items = msg.data.filter((it) => it && typeof it === 'object');
  return {
    name,
    data: items.map(name === EVENT.MESSAGE_READ_BY_SELF ? normalizeOwnReadItem : normalizeEventItem),
  };
}

// normalizeMemberPage returns a member page with every list present, and
// readTimeList (seconds, aligned with readUserIDList) when the server sent
// read times.
export function normalizeMemberPage(page) {
  const p = page && typeof page === 'object' ? page : {};
  const out = {
    messageID: p.messageID,
    isCompleted: p.isCompleted === true,
    cursor: typeof p.cursor === 'string' ? p.cursor : '',
    readUserIDList: Array.isArray(p.readUserIDList) ? p.readUserIDList : [],
    unreadUserIDList: Array.isArray(p.unreadUserIDList) ? p.unreadUserIDList : [],
    deliveredUserIDList: Array.isArray(p.deliveredUserIDList) ? p.deliveredUserIDList : [],
    undeliveredUserIDList: Array.isArray(p.undeliveredUserIDList) ? p.undeliveredUserIDList : [],
  };
  if (Array.isArray(p.readTimeList)) out.readTimeList = p.readTimeList;
  return out;
}

// normalizeReadReceiptInfo returns the readReceiptInfo of one answer of
// POST /v1/receipts/query: counts for a group message, isPeerRead and
// timestamp for a C2C one, or { code, message } when the server could not
// answer for the message (10062 no receipt info, 10007 not yours to see).
export function normalizeReadReceiptInfo(it, conversationType) {
  if (it.code) return { code: it.code, message: it.message || '' };
  const info = it.readReceiptInfo || {};
  if (conversationType === TYPES.CONV_C2C) {
    const isPeerRead = info.isPeerRead === true;
    return {
      isPeerRead,
      isPeerDelivered: typeof info.isPeerDelivered === 'boolean' ? info.isPeerDelivered : isPeerRead,
      timestamp: typeof info.timestamp === 'number' ? info.timestamp : undefined,
    };
  }
  const readCount = numberOr(info.readCount, 0);
  const unreadCount = numberOr(info.unreadCount, 0);
  return {
    readCount,
    unreadCount,
    deliveredCount: numberOr(info.deliveredCount, readCount),
    undeliveredCount: numberOr(info.undeliveredCount, unreadCount),
  };
}

// conversationOf returns the SDK's conversation ID of options for user:
// options.conversationID, or the conversation of options.message
// (GROUP<to>, or C2C<the other user>).
function conversationOf(options, user, where) {
  if (typeof options.conversationID === 'string' && options.conversationID !== '') return options.conversationID;
  if (options.message === undefined) {
    throw fail(CODES.INVALID_PARAMETER, `${where} needs { conversationID } or { message }`);
  }
  const m = ref(options.message, 'message');
  if (m.conversationType === TYPES.CONV_GROUP) return 'GROUP' + m.to;
  if (m.conversationType === TYPES.CONV_C2C) return 'C2C' + (m.from === user ? m.to : m.from);
  throw fail(CODES.INVALID_PARAMETER, `message.conversationType must be ${TYPES.CONV_GROUP} or ${TYPES.CONV_C2C}`);
}

function websocketURL(base, token) {
  const u = new URL('/v1/events', base);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.searchParams.set('token', token);
  return u.toString();
}

// tokenUser returns the user a readreceiptd token names, or undefined if
// the token cannot be read (the server then decides).
function tokenUser(token) {
  try {
    const p = token.split('.')[0].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(p + '='.repeat((4 - (p.length % 4)) % 4));
    const json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    const u = JSON.parse(json).u;
    return typeof u === 'string' ? u : undefined;
  } catch (_) {
    return undefined;
  }
}

/**
 * A client of one readreceiptd server for one logged-in user at a time.
 * Make one with ReadReceipt.create.
 */
export class ReadReceiptClient {
  #base;
  #WebSocket;
  #minDelay;
  #maxDelay;
  #handlers = new Map(); // event name -> Set of handlers
  #userID = '';
  #token = '';
  #session = 0; // counts logins and logouts: late callbacks of an old one are dropped
  #ws = null;
  #timer = 0;
  #attempts = 0;
  #everOpen = false;
  #lost = false;
  #state = TYPES.NET_STATE_DISCONNECTED;
  #destroyed = false;

  constructor(options = {}) {
    const base = options.baseURL || (typeof location !== 'undefined' ? location.origin : '');
    if (!base) throw fail(CODES.INVALID_PARAMETER, 'ReadReceipt.create needs { baseURL } outside a browser');
    this.#base = String(base).replace(/\/+$/, '') + '/';
    this.#WebSocket = options.WebSocket;
    const rc = options.reconnect || {};
    this.#minDelay = numberOr(rc.minDelay, 500);
    this.#maxDelay = numberOr(rc.maxDelay, 15000);
  }

  /** The logged-in user, or '' */
  get userID() {
    return this.#userID;
  }

  /** The event connection's state: a TYPES.NET_STATE_* value. */
  get netState() {
    return this.#state;
  }

  on(name, handler) {
    if (typeof handler !== 'function') throw fail(CODES.INVALID_PARAMETER, 'on: handler must be a function');
    let set = this.#handlers.get(name);
    if (!set) this.#handlers.set(name, (set = new Set()));
    set.add(handler);
  }

  off(name, handler) {
    const set = this.#handlers.get(name);
    if (set) set.delete(handler);
  }

  #emit(name, data) {
    const set = this.#handlers.get(name);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h({ name, data });
      } catch (e) {
        // A failing handler must not stop the others or the connection.
        console.error(`readreceipt: ${name} handler threw:`, e);
      }
    }
  }

  #setState(state, reconnected) {
    if (state === this.#state) return;
    this.#state = state;
    const data = { state };
    if (state === TYPES.NET_STATE_CONNECTED) data.reconnected = reconnected === true;
    this.#emit(EVENT.NET_STATE_CHANGE, data);
  }

  // #request POSTs body to path (or GETs when body is undefined, or uses
  // method) with token and returns the answer's data; it rejects with a
  // ReadReceiptError.
  async #request(path, body, token = this.#token, method = body === undefined ? 'GET' : 'POST') {
    if (this.#destroyed) throw fail(CODES.DESTROYED, 'the client was destroyed');
    if (!token) throw fail(CODES.NOT_LOGGED_IN, 'not logged in: call login({ userID, userSig }) first');
    let res;
    try {
      const headers = { Authorization: 'Bearer ' + token };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      res = await fetch(new URL(path, this.#base), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw fail(CODES.NETWORK, `the server cannot be reached: ${e && e.message ? e.message : e}`);
    }
    let payload = null;
    try {
      payload = await res.json();
    } catch (_) {
      // not JSON: handled below
    }
    if (!payload || typeof payload.code !== 'number') {
      throw fail(CODES.BAD_RESPONSE, `HTTP ${res.status} ${res.statusText} without readreceiptd's JSON`);
    }
    if (payload.code !== 0 || !res.ok) {
      throw fail(payload.code || CODES.BAD_RESPONSE, payload.message || `HTTP ${res.status}`);
    }
    return payload.data || {};
  }

  /**
   * Log in as userID with userSig, a readreceiptd token for that user.
   * Resolves { code: 0, data: { repeatLogin } } once the server accepts the
   * token; then the event connection opens (EVENT.SDK_READY).
   */
  async login(options = {}) {
    const { userID, userSig } = options;
    if (typeof userID !== 'string' || userID === '' || typeof userSig !== 'string' || userSig === '') {
      throw fail(CODES.INVALID_PARAMETER, 'login needs { userID, userSig } as non-empty strings');
    }
    if (this.#destroyed) throw fail(CODES.DESTROYED, 'the client was destroyed');
    const named = tokenUser(userSig);
    if (named !== undefined && named !== userID) {
      throw fail(CODES.USER_MISMATCH, `userSig is a token for ${JSON.stringify(named)}, not ${JSON.stringify(userID)}`);
    }
    if (this.#token && this.#userID === userID && this.#token === userSig) {
      return { code: 0, data: { repeatLogin: true } };
    }
    const session = this.#session;
    await this.#checkToken(userSig);
    if (session !== this.#session || this.#destroyed) {
      // logout, destroy or another login came while the token was checked:
      // the latest call wins.
      throw fail(this.#destroyed ? CODES.DESTROYED : CODES.NOT_LOGGED_IN, 'login was overtaken by logout or another login');
    }
    if (this.#token) this.#stop();
    this.#session++;
    this.#userID = userID;
    this.#token = userSig;
    this.#everOpen = false;
    this.#attempts = 0;
    this.#connect(this.#session);
    return { code: 0, data: { repeatLogin: false } };
  }

  // #checkToken asks the server whether token is good, with a query for a
  // message nobody tracks: it answers 401 with a token code if the token
  // fails, else 200 (with 10062 for that message). Any answer but a token
  // code or no answer at all means the token passed.
  async #checkToken(token) {
    try {
      await this.#request('v1/receipts/query', { messageList: [CHECK_MESSAGE] }, token);
    } catch (e) {
      if (TOKEN_CODES.has(e.code) || e.code === CODES.NETWORK || e.code === CODES.BAD_RESPONSE) throw e;
    }
  }

  /** Log out: the event connection closes and calls reject until the next login. */
  async logout() {
    const was = !!this.#token;
    this.#stop();
    if (was) this.#emit(EVENT.SDK_NOT_READY, {});
    return { code: 0, data: {} };
  }

  /** Log out and drop every handler; the client cannot be used again. */
  async destroy() {
    await this.logout();
    this.#handlers.clear();
    this.#destroyed = true;
    return { code: 0, data: {} };
  }

  #stop() {
    this.#session++;
    this.#token = '';
    this.#userID = '';
    clearTimeout(this.#timer);
    this.#timer = 0;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      // Closing a socket that is still connecting makes the ws package
      // report an error: it is expected here.
      ws.onerror = () => {};
      try {
        ws.close(1000, 'logout');
      } catch (_) {
        // already closing
      }
    }
    this.#setState(TYPES.NET_STATE_DISCONNECTED);
  }

  async #socketClass() {
    if (this.#WebSocket) return this.#WebSocket;
    if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
    // Node before 22 has no WebSocket: use the ws package's, same API.
    const mod = await import('ws');
    return mod.WebSocket || mod.default;
  }

  async #connect(session) {
    if (session !== this.#session) return;
    this.#setState(TYPES.NET_STATE_CONNECTING);
    let WS;
    try {
      WS = await this.#socketClass();
    } catch (e) {
      this.#stop();
      this.#emit(EVENT.ERROR, { code: CODES.NETWORK, message: `no WebSocket: ${e && e.message ? e.message : e} (install the ws package)` });
      return;
    }
    if (session !== this.#session) return;
    let ws;
    try {
      ws = new WS(websocketURL(this.#base, this.#token));
    } catch (e) {
      this.#retry(session, false);
      return;
    }
    this.#ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (session !== this.#session) return;
      opened = true;
      this.#attempts = 0;
      const first = !this.#everOpen;
      this.#everOpen = true;
      this.#setState(TYPES.NET_STATE_CONNECTED, !first);
      if (first) this.#emit(EVENT.SDK_READY, {});
    };
    ws.onmessage = (ev) => {
      if (session !== this.#session) return;
      let msg;
      try {
        const text = typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data);
        msg = JSON.parse(text);
      } catch (_) {
        return; // not JSON: nothing the SDK would report
      }
      const event = normalizeEventMessage(msg);
      if (event && event.data.length) this.#emit(event.name, event.data);
    };
    ws.onerror = () => {
      // onclose follows and handles it.
    };
    ws.onclose = () => {
      if (session !== this.#session) return;
      this.#ws = null;
      this.#retry(session, opened);
    };
  }

  // #retry schedules the next connection attempt with exponential backoff
  // and jitter. After an attempt that never opened, it asks the server
  // whether the token still holds, and gives up (EVENT.ERROR) if not.
  #retry(session, wasOpen) {
    this.#setState(TYPES.NET_STATE_CONNECTING);
    this.#attempts++;
    const exp = Math.min(this.#maxDelay, this.#minDelay * 2 ** (this.#attempts - 1));
    const delay = exp / 2 + Math.random() * (exp / 2);
    this.#timer = setTimeout(async () => {
      if (session !== this.#session) return;
      if (!wasOpen) {
        try {
          await this.#checkToken(this.#token);
        } catch (e) {
          if (session !== this.#session) return;
          if (TOKEN_CODES.has(e.code)) {
            this.#stop();
            this.#emit(EVENT.ERROR, { code: e.code, message: e.message });
            return;
          }
        }
      }
      this.#connect(session);
    }, delay);
  }

  /**
   * Report that the logged-in user has read the messages (1 to 30, one
   * conversation). Resolves { code: 0, data: { messageList } } with one
   * { ID, recorded, code, message } per message: code is 0 when the receipt
   * is recorded (recorded is false when it was before), else the reason
   * that message took none (10062, 91005 own message, 91006 not a
   * recipient). Rejects when the call fails as a whole (91001 too many,
   * 91003 mixed conversations, ...).
   */
  async sendMessageReadReceipt(messageList) {
    const data = await this.#request('v1/receipts', { messageList: refs(messageList) });
    const list = Array.isArray(data.messageList) ? data.messageList : [];
    return { code: 0, data: { messageList: list } };
  }

  /**
   * Read state of the logged-in user's messages of one conversation.
   * Resolves { code: 0, data: { messageList } }: the given Message objects,
   * each with readReceiptInfo set, as the SDK does: { readCount,
   * unreadCount } for a group message, { isPeerRead, timestamp } for a C2C
   * one (and message.isPeerRead), or { code, message } for a message the
   * server could not answer for (10062 no receipt info, 10007 not yours).
   * timestamp (seconds) is when the peer's receipt was recorded; undefined
   * while the message is unread (readreceiptd leaves it out then).
   */
  async getMessageReadReceiptList(messageList) {
    const list = refs(messageList);
    const data = await this.#request('v1/receipts/query', { messageList: list });
    const answers = new Map();
    for (const it of Array.isArray(data.messageList) ? data.messageList : []) answers.set(it.ID, it);
    for (const m of messageList) {
      const it = answers.get(m.ID);
      if (!it) continue;
      const type = it.conversationType || m.conversationType;
      m.readReceiptInfo = normalizeReadReceiptInfo(it, type);
      if (type === TYPES.CONV_C2C && !it.code) m.isPeerRead = m.readReceiptInfo.isPeerRead;
    }
    return { code: 0, data: { messageList } };
  }

  /**
   * One page of the members who have read (filter 0), not read (1), been
   * delivered (2) or not been delivered (3) a group message the logged-in
   * user sent. Resolves { code: 0, data: { messageID, isCompleted, cursor,
   * readUserIDList, unreadUserIDList, deliveredUserIDList,
   * undeliveredUserIDList } }: every list is there, those not asked for
   * empty; readTimeList too (seconds, aligned with readUserIDList) from a
   * server that keeps read times. Start with cursor '' and pass each page's
   * cursor until isCompleted. count defaults to 100.
   */
  async getGroupMessageReadMemberList(options = {}) {
    const { message, filter, cursor = '', count = 100 } = options;
    const data = await this.#request('v1/receipts/members', {
      message: ref(message, 'message'),
      filter,
      cursor,
      count,
    });
    return { code: 0, data: normalizeMemberPage(data) };
  }

  /**
   * Report that the logged-in user's device has received the messages (1 to
   * 30, one conversation): the senders see them delivered (two grey ticks)
   * and get EVENT.MESSAGE_DELIVERY_RECEIPT_RECEIVED. Resolves as
   * sendMessageReadReceipt does; recorded is false for a message already
   * delivered to the user or read by them.
   */
  async sendMessageDeliveryReceipt(messageList) {
    const data = await this.#request('v1/receipts/delivered', { messageList: refs(messageList) });
    const list = Array.isArray(data.messageList) ? data.messageList : [];
    return { code: 0, data: { messageList: list } };
  }

  /**
   * Mark a conversation (or one thread of it) read up to a message or a
   * time: a read receipt for every tracked message after the previous mark
   * and up to the new one. options: { conversationID } (GROUP<groupID> or
   * C2C<the other user>) or { message } (its conversation; and, when neither
   * messageID nor time is given, the mark is at that message), thread,
   * messageID, or time (Unix milliseconds or a Date). Resolves { code: 0,
   * data: { conversationID, thread, mark: { messageID, time }, messageCount,
   * recordedCount } }; marks never move back.
   */
  async markConversationRead(options = {}) {
    if (options === null || typeof options !== 'object') throw fail(CODES.INVALID_PARAMETER, 'markConversationRead needs an options object');
    const body = { conversationID: conversationOf(options, this.#userID, 'markConversationRead') };
    if (options.thread !== undefined) body.thread = options.thread;
    let { messageID, time } = options;
    if (time instanceof Date) time = time.getTime();
    if (messageID === undefined && time === undefined && options.message) messageID = options.message.ID;
    if (messageID !== undefined) body.messageID = messageID;
    if (time !== undefined) body.time = time;
    const data = await this.#request('v1/conversations/read-mark', body);
    return {
      code: 0,
      data: {
        conversationID: data.conversationID,
        thread: typeof data.thread === 'string' ? data.thread : '',
        mark: normalizeMark(data.mark),
        messageCount: numberOr(data.messageCount, 0),
        recordedCount: numberOr(data.recordedCount, 0),
      },
    };
  }

  /**
   * The logged-in user's read mark in a conversation or thread: options
   * { conversationID } or { message }, and thread. Resolves { code: 0, data:
   * { conversationID, thread, mark } }, mark undefined when there is none.
   */
  async getReadMark(options = {}) {
    if (options === null || typeof options !== 'object') throw fail(CODES.INVALID_PARAMETER, 'getReadMark needs an options object');
    const q = new URLSearchParams({ conversationID: conversationOf(options, this.#userID, 'getReadMark') });
    if (typeof options.thread === 'string' && options.thread !== '') q.set('thread', options.thread);
    const data = await this.#request('v1/conversations/read-mark?' + q.toString());
    return {
      code: 0,
      data: { conversationID: data.conversationID, thread: typeof data.thread === 'string' ? data.thread : '', mark: normalizeMark(data.mark) },
    };
  }

  /**
   * Turn the logged-in user's private receipts on or off: while on, the
   * user's reads count for the user's own state only; senders see the
   * messages delivered, not read. Resolves { code: 0, data: { private } }.
   */
  async setReceiptsPrivate(on) {
    if (typeof on !== 'boolean') throw fail(CODES.INVALID_PARAMETER, 'setReceiptsPrivate takes true or false');
    const data = await this.#request('v1/me/privacy', { private: on }, this.#token, 'PUT');
    return { code: 0, data: { private: data.private === true } };
  }

  /** Whether the logged-in user's receipts are private: { code: 0, data: { private } }. */
  async getReceiptsPrivate() {
    const data = await this.#request('v1/me/privacy');
    return { code: 0, data: { private: data.private === true } };
  }

  /**
   * The logged-in user's own read state of messages of one conversation (up
   * to 100), as the user's other devices need it. Resolves { code: 0, data:
   * { messageList } } with one { ID, isRead, isPrivate, isDelivered,
   * timestamp, code, message } per message; timestamp (seconds) where the
   * server keeps read times, else undefined; code 10062 or 91005 for a
   * message the user cannot have read.
   */
  async getMessageReadState(messageList) {
    const data = await this.#request('v1/receipts/state', { messageList: refs(messageList) });
    const list = (Array.isArray(data.messageList) ? data.messageList : []).map((it) => ({
      ID: it.ID,
      isRead: it.isRead === true,
      isPrivate: it.isPrivate === true,
      isDelivered: it.isDelivered === true,
      timestamp: typeof it.timestamp === 'number' ? it.timestamp : undefined,
      code: numberOr(it.code, 0),
      message: typeof it.message === 'string' ? it.message : '',
    }));
    return { code: 0, data: { messageList: list } };
  }

  /**
   * When each of userIDList (up to 100) read a message the logged-in user
   * sent. Resolves { code: 0, data: { messageID, userList } } with one
   * { userID, isRead, timestamp } per user, timestamp in seconds or
   * undefined (unread, private, or a server without read times for group
   * messages).
   */
  async getMessageReadTimes(options = {}) {
    const { message, userIDList } = options || {};
    if (!Array.isArray(userIDList)) throw fail(CODES.INVALID_PARAMETER, 'getMessageReadTimes needs { message, userIDList }');
    const data = await this.#request('v1/receipts/read-times', { message: ref(message, 'message'), userIDList });
    const userList = (Array.isArray(data.userList) ? data.userList : []).map((u) => ({
      userID: u.userID,
      isRead: u.isRead === true,
      timestamp: typeof u.timestamp === 'number' ? u.timestamp : undefined,
    }));
    return { code: 0, data: { messageID: data.messageID, userList } };
  }
}

/** The entry point, named as the SDK's TIM: ReadReceipt.create({ baseURL }). */
const ReadReceipt = Object.freeze({
  create(options) {
    return new ReadReceiptClient(options);
  },
  EVENT,
  TYPES,
  CODES,
});

export { ReadReceipt };
export default ReadReceipt;
