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
// GET /v1/events (see cmd/readreceiptd/openapi.yaml). The client turns what
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

// The server's name for the receipt event, as it sends it today.
const SERVER_RECEIPT_EVENT = 'MESSAGE_READ_RECEIPT_RECEIVED';
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

// normalizeEventItem returns an event item in the SDK's shape. timestamp is
// the server's (seconds) when it sends one (C2C items), else undefined.
export function normalizeEventItem(it) {
  return {
    groupID: typeof it.groupID === 'string' ? it.groupID : '',
    userID: typeof it.userID === 'string' ? it.userID : '',
    messageID: it.messageID,
    readCount: numberOr(it.readCount, 0),
    unreadCount: numberOr(it.unreadCount, 0),
    isPeerRead: it.isPeerRead === true,
    timestamp: typeof it.timestamp === 'number' ? it.timestamp : undefined,
  };
}

// normalizeEventMessage turns one text message of /v1/events into
// { name, data }, or returns null for a message that is not a receipt event.
// It reads both today's {"event": ...} and the SDK's {"name": ...}.
export function normalizeEventMessage(msg) {
  if (msg === null || typeof msg !== 'object' || !Array.isArray(msg.data)) return null;
  const name = msg.name !== undefined ? msg.name : msg.event;
  if (name !== SERVER_RECEIPT_EVENT && name !== EVENT.MESSAGE_READ_RECEIPT_RECEIVED) return null;
  return {
    name: EVENT.MESSAGE_READ_RECEIPT_RECEIVED,
    data: msg.data.filter((it) => it && typeof it === 'object').map(normalizeEventItem),
  };
}

// normalizeMemberPage returns a member page with both lists present.
export function normalizeMemberPage(page) {
  const p = page && typeof page === 'object' ? page : {};
  return {
    messageID: p.messageID,
    isCompleted: p.isCompleted === true,
    cursor: typeof p.cursor === 'string' ? p.cursor : '',
    readUserIDList: Array.isArray(p.readUserIDList) ? p.readUserIDList : [],
    unreadUserIDList: Array.isArray(p.unreadUserIDList) ? p.unreadUserIDList : [],
  };
}

// normalizeReadReceiptInfo returns the readReceiptInfo of one answer of
// POST /v1/receipts/query: counts for a group message, isPeerRead and
// timestamp for a C2C one, or { code, message } when the server could not
// answer for the message (10062 no receipt info, 10007 not yours to see).
export function normalizeReadReceiptInfo(it, conversationType) {
  if (it.code) return { code: it.code, message: it.message || '' };
  const info = it.readReceiptInfo || {};
  if (conversationType === TYPES.CONV_C2C) {
    return {
      isPeerRead: info.isPeerRead === true,
      timestamp: typeof info.timestamp === 'number' ? info.timestamp : undefined,
    };
  }
  return { readCount: numberOr(info.readCount, 0), unreadCount: numberOr(info.unreadCount, 0) };
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

  // #request POSTs body to path (or GETs when body is undefined) with
  // token and returns the answer's data; it rejects with a ReadReceiptError.
  async #request(path, body, token = this.#token) {
    if (this.#destroyed) throw fail(CODES.DESTROYED, 'the client was destroyed');
    if (!token) throw fail(CODES.NOT_LOGGED_IN, 'not logged in: call login({ userID, userSig }) first');
    let res;
    try {
      res = await fetch(new URL(path, this.#base), {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
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
   * One page of the members who have read (filter 0) or not read (filter 1)
   * a group message the logged-in user sent. Resolves { code: 0, data:
   * { messageID, isCompleted, cursor, readUserIDList, unreadUserIDList } }:
   * both lists are there, the one not asked for empty. Start with cursor ''
   * and pass each page's cursor until isCompleted. count defaults to 100.
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
