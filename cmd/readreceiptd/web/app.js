// readreceipt demo page: chat in the demo group as one of its users, ask for
// read receipts, report what you read, and watch the sender's counts change.
// Plain browser JavaScript, served as is: no build step, no dependencies.
//
// Beyond the SDK's read receipts the page shows readreceiptd's delivery
// receipts: a recipient's page reports each message delivered as it
// arrives (sendMessageDeliveryReceipt) and read once it is seen; the
// sender's ticks go from one grey (sent) to two grey (delivered to someone)
// to two blue (read by someone). Each user has a switch for private read
// receipts (setReceiptsPrivate): their reads then show as deliveries only.
//
// The read receipts go through @readreceipt/client (readreceipt-client.js
// here, a copy of clients/js/index.js), with the SDK's calls: the page is
// that client's living example. Under it are readreceiptd's /v1/receipts,
// /v1/receipts/delivered, /v1/receipts/query, /v1/receipts/members,
// /v1/me/privacy and the /v1/events WebSocket.
// The /demo/ endpoints (users, login, messages, the message stream) stand
// for the IM host that owns users and message bodies; the page calls them
// itself.
//
// This is a classic script that loads the client with import(), so the
// page's <script src="/web/app.js" defer> stays as it is.
'use strict';

(async () => {
  // Members per page of the read/unread lists. Small on purpose, so that the
  // demo group's six members already need "Load more".
  const PAGE_SIZE = 2;
  // Members per page in the town hall, where there are a million.
  const TOWN_PAGE_SIZE = 50;
  // How often the town hall's creation progress is asked for.
  const TOWN_POLL_MS = 400;
  // At most this many messages go in one POST /v1/receipts (the SDK's limit).
  const RECEIPT_BATCH = 30;
  // At most this many messages go in one POST /v1/receipts/query.
  const QUERY_BATCH = 100;
  const CODE_RECEIPT_NOT_FOUND = 10062;

  const $ = (id) => document.getElementById(id);
  const el = {
    conn: $('conn'), groupName: $('group-name'), users: $('users'), intro: $('intro'),
    chat: $('chat'), whoami: $('whoami'), messages: $('messages'), empty: $('empty'),
    composer: $('composer'), text: $('text'), needReceipt: $('need-receipt'), send: $('send'),
    toasts: $('toasts'), sheet: $('sheet'), sheetQuote: $('sheet-quote'),
    sheetClose: $('sheet-close'), sheetRefresh: $('sheet-refresh'),
    tabRead: $('tab-read'), tabUnread: $('tab-unread'),
    memberList: $('member-list'), memberEmpty: $('member-empty'), loadMore: $('load-more'),
    town: $('town'), townSize: $('town-size'), townOpen: $('town-open'),
    townProgress: $('town-progress'), townBar: $('town-bar'), townProgressText: $('town-progress-text'),
    townReady: $('town-ready'), townComposer: $('town-composer'), townText: $('town-text'),
    townSend: $('town-send'), townRate: $('town-rate'), townRateOut: $('town-rate-out'),
    townMessages: $('town-messages'), privacy: $('private-receipts'),
  };

  // Everything that belongs to the signed-in user is reset on a switch;
  // session counts switches so that late answers for an earlier user are
  // dropped.
  const state = {
    groupID: '', users: [],
    user: '', token: '', session: 0,
    messages: new Map(),   // ID -> message, in arrival order
    lastID: '',
    receipts: new Map(),   // own message ID -> {readCount, unreadCount} or {code, message}
    reported: new Set(),   // others' message IDs this user has reported read
    failed: new Map(),     // others' message IDs whose receipt was refused -> code
    pendingRead: new Set(),
    onScreen: new Set(),   // others' messages currently in view
    flushTimer: 0,
    delivered: new Set(),  // others' message IDs this page has reported delivered
    pendingDelivery: new Set(),
    deliveryTimer: 0,
    private: false,        // this user's receipts are private
    net: 'disconnected',   // the receipt client's last NET_STATE_CHANGE
    stream: null, streamAttempts: 0, streamTimer: 0,
    observer: null,
    panel: null,           // the open member panel, see openMembers
    townHall: '',          // the town hall's group ID; '' when the server has none
    townState: '',         // absent, creating, ready or failed
    townTimer: 0,
  };

  // The token codes (HTTP 401) of readreceiptd: the demo signs in again.
  const TOKEN_CODES = new Set([70001, 70002, 70003, 70004]);

  class APIError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  // ---- errors, shown, never swallowed ----

  function showError(what, err) {
    const code = err && err.code !== undefined ? err.code : '?';
    const msg = err && err.message ? err.message : String(err);
    const t = document.createElement('div');
    t.className = 'toast';
    t.dataset.code = String(code);
    const span = document.createElement('span');
    span.textContent = `${what}: ${msg} (code ${code})`;
    const close = document.createElement('button');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '\u2715';
    close.addEventListener('click', () => t.remove());
    t.append(span, close);
    el.toasts.append(t);
    while (el.toasts.children.length > 4) el.toasts.firstElementChild.remove();
    setTimeout(() => t.remove(), 10000);
  }

  // ---- the read-receipt client ----

  let ReadReceipt;
  try {
    ({ default: ReadReceipt } = await import('/web/readreceipt-client.js'));
  } catch (e) {
    showError('Loading the read-receipt client', e);
    return;
  }
  const client = ReadReceipt.create({ baseURL: location.origin });

  // rr runs a call of the client; if the token was refused (expired, or the
  // server restarted with a new key) it signs in again once and repeats it.
  async function rr(call) {
    try {
      return await call();
    } catch (e) {
      if (!TOKEN_CODES.has(e.code) || !state.user) throw e;
      await login(state.user, state.session);
      return call();
    }
  }

  // ---- HTTP to the demo host ----

  async function api(method, path, body, opts = {}) {
    const headers = {};
    if (state.token && !opts.noAuth) headers.Authorization = 'Bearer ' + state.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method, headers, signal: opts.signal,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new APIError('network', 'the server cannot be reached', 0);
    }
    let payload = null;
    try { payload = await res.json(); } catch (_) { /* not JSON: handled below */ }
    if (res.status === 401 && state.user && !opts.retried && !opts.noAuth) {
      // The demo token expired (or the server restarted with a new key):
      // sign in again once and repeat the call.
      await login(state.user, state.session);
      return api(method, path, body, { ...opts, retried: true });
    }
    if (!payload || typeof payload.code !== 'number') {
      throw new APIError(res.status, `HTTP ${res.status} ${res.statusText}`, res.status);
    }
    if (payload.code !== 0 || !res.ok) {
      throw new APIError(payload.code, payload.message || `HTTP ${res.status}`, res.status);
    }
    return payload.data || {};
  }

  function chunks(list, n) {
    const out = [];
    for (let i = 0; i < list.length; i += n) out.push(list.slice(i, i + n));
    return out;
  }

  function ref(m) {
    return { ID: m.ID, conversationType: m.conversationType, to: m.to, from: m.from };
  }

  // ---- users ----

  async function loadUsers() {
    const data = await api('GET', '/demo/users', undefined, { noAuth: true });
    state.groupID = data.groupID;
    state.users = data.users || [];
    state.townHall = data.townHall || '';
    el.groupName.textContent = data.groupID;
    el.users.replaceChildren(...state.users.map((u) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'user';
      b.dataset.user = u;
      b.textContent = u;
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => selectUser(u));
      return b;
    }));
  }

  // login gets a demo token for user and logs the receipt client in with it
  // (the token is the client's userSig).
  async function login(user, session) {
    const data = await api('POST', '/demo/login', { userID: user }, { noAuth: true });
    if (session !== state.session) throw new DOMException('user switched', 'AbortError');
    state.token = data.userToken;
    try {
      await client.login({ userID: user, userSig: data.userToken });
    } catch (e) {
      // A switch to another user meanwhile overtakes this login.
      if (session !== state.session) throw new DOMException('user switched', 'AbortError');
      throw e;
    }
    if (session !== state.session) throw new DOMException('user switched', 'AbortError');
  }

  function resetUserState() {
    state.session++;
    client.logout();
    if (state.stream) { state.stream.onclose = null; state.stream.close(1000, 'user switched'); }
    state.stream = null;
    state.streamAttempts = 0;
    clearTimeout(state.streamTimer);
    // A timer cleared but left set would keep the next user's reads from
    // ever being scheduled (queueVisible waits for it to fire).
    clearTimeout(state.flushTimer);
    state.flushTimer = 0;
    clearTimeout(state.deliveryTimer);
    state.deliveryTimer = 0;
    state.delivered = new Set();
    state.pendingDelivery = new Set();
    state.private = false;
    el.privacy.checked = false;
    el.privacy.dataset.state = 'idle';
    if (state.observer) state.observer.disconnect();
    state.observer = null;
    closeMembers();
    state.token = '';
    state.messages = new Map();
    state.lastID = '';
    state.receipts = new Map();
    state.reported = new Set();
    state.failed = new Map();
    state.pendingRead = new Set();
    state.onScreen = new Set();
    el.messages.replaceChildren();
    el.townMessages.replaceChildren();
    clearTimeout(state.townTimer);
    state.townTimer = 0;
    updateConn();
  }

  async function selectUser(user) {
    resetUserState();
    const session = state.session;
    state.user = user;
    sessionStorage.setItem('readreceipt-demo-user', user);
    for (const b of el.users.children) b.setAttribute('aria-pressed', String(b.dataset.user === user));
    el.intro.hidden = true;
    el.chat.hidden = false;
    el.composer.hidden = false;
    el.whoami.textContent = `You are ${user}. Messages from others that ask for a receipt are reported read once you see them.`;
    el.empty.hidden = true;
    state.observer = new IntersectionObserver(onIntersect, { root: el.chat, threshold: [0, 0.5, 1] });
    try {
      await login(user, session);
      await loadPrivacy(session);
      const data = await api('GET', '/demo/messages');
      if (session !== state.session) return;
      addMessages(data.messageList || []);
      el.empty.hidden = state.messages.size > 0;
      scrollToEnd();
      connectStream(session);
      await refreshCounts(ownTrackedIDs(), session);
      if (state.townHall) await townRefresh(session);
    } catch (e) {
      if (e.name === 'AbortError') return;
      showError(`Signing in as ${user}`, e);
    }
  }

  // ---- messages ----

  function isOwnTracked(m) {
    return m.from === state.user && m.needReadReceipt;
  }

  function fmtTime(sec) {
    const d = new Date(sec * 1000);
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function addMessages(list) {
    const atEnd = el.chat.scrollHeight - el.chat.scrollTop - el.chat.clientHeight < 40;
    let added = false;
    for (const m of list) {
      state.lastID = m.ID;
      if (state.messages.has(m.ID)) continue;
      state.messages.set(m.ID, m);
      el.messages.append(renderMessage(m));
      added = true;
      if (m.needReadReceipt && m.from !== state.user) queueDelivery(m.ID);
    }
    if (added) {
      el.empty.hidden = true;
      if (atEnd) scrollToEnd();
    }
  }

  function scrollToEnd() {
    el.chat.scrollTop = el.chat.scrollHeight;
  }

  function renderMessage(m) {
    const mine = m.from === state.user;
    const li = document.createElement('li');
    li.className = 'msg' + (mine ? ' mine' : '');
    li.dataset.id = m.ID;
    li.dataset.from = m.from;

    const meta = document.createElement('div');
    meta.className = 'meta';
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = mine ? `${m.from} (you)` : m.from;
    const time = document.createElement('time');
    time.dateTime = new Date(m.time * 1000).toISOString();
    time.textContent = fmtTime(m.time);
    meta.append(from, time);

    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = m.text;

    const foot = document.createElement('div');
    foot.className = 'foot';
    li.append(meta, text, foot);

    if (m.needReadReceipt && mine) {
      const ticks = document.createElement('span');
      ticks.className = 'ticks';
      ticks.dataset.state = 'sent';
      ticks.textContent = '\u2713';
      foot.append(ticks);
      const badge = document.createElement('button');
      badge.type = 'button';
      badge.className = 'badge';
      badge.textContent = '\u2026';
      badge.addEventListener('click', () => openMembers(m.ID));
      foot.append(badge);
      updateBadge(m.ID);
    } else if (m.needReadReceipt) {
      const note = document.createElement('span');
      note.className = 'note';
      note.textContent = 'read receipt requested';
      foot.append(note);
      state.observer.observe(li);
    }
    return li;
  }

  function messageEl(id) {
    return document.querySelector(`li.msg[data-id="${CSS.escape(id)}"]`);
  }

  // ---- sending ----

  async function send(ev) {
    ev.preventDefault();
    const text = el.text.value.trim();
    if (!text) return;
    const session = state.session;
    el.send.disabled = true;
    try {
      const data = await api('POST', '/demo/messages', { text, needReadReceipt: el.needReceipt.checked });
      if (session !== state.session) return;
      el.text.value = '';
      autoGrow();
      addMessages([data]);
      scrollToEnd();
      if (data.needReadReceipt) await refreshCounts([data.ID], session);
    } catch (e) {
      if (e.name !== 'AbortError') showError('Sending the message', e);
    } finally {
      el.send.disabled = false;
      el.text.focus();
    }
  }

  function autoGrow() {
    el.text.style.height = 'auto';
    el.text.style.height = el.text.scrollHeight + 2 + 'px';
  }

  // ---- new messages over the demo stream ----

  // The demo stream sends the demo group's messages after the last one this
  // page has, then each new one as it is sent.
  function connectStream(session) {
    if (session !== state.session) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = `token=${encodeURIComponent(state.token)}&after=${encodeURIComponent(state.lastID)}`;
    const ws = new WebSocket(`${proto}//${location.host}/demo/stream?${q}`);
    state.stream = ws;
    updateConn();
    ws.onopen = () => {
      if (session !== state.session) return;
      state.streamAttempts = 0;
      updateConn();
    };
    ws.onmessage = (ev) => {
      if (session !== state.session) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) {
        showError('New messages', new APIError('bad-event', 'the server sent a message that is not JSON'));
        return;
      }
      if (msg.event !== 'DEMO_MESSAGES' || !Array.isArray(msg.data)) return;
      const fresh = msg.data.filter((m) => !state.messages.has(m.ID));
      addMessages(msg.data);
      const own = fresh.filter(isOwnTracked).map((m) => m.ID);
      if (own.length) refreshCounts(own, session);
    };
    ws.onclose = (ev) => {
      if (session !== state.session) return;
      state.stream = null;
      updateConn();
      state.streamAttempts++;
      if (state.streamAttempts === 1) {
        showError('New messages', new APIError(ev.code, `connection closed${ev.reason ? ': ' + ev.reason : ''}; reconnecting`));
      }
      const delay = Math.min(1000 * 2 ** (state.streamAttempts - 1), 15000);
      state.streamTimer = setTimeout(async () => {
        if (session !== state.session) return;
        if (state.streamAttempts % 3 === 0) {
          try { await login(state.user, session); } catch (e) {
            if (e.name !== 'AbortError') showError('Signing in again', e);
          }
        }
        connectStream(session);
      }, delay);
    };
  }

  // ---- receipts for others' messages ----

  function onIntersect(entries) {
    for (const e of entries) {
      const id = e.target.dataset.id;
      const seen = e.isIntersecting &&
        (e.intersectionRatio >= 0.5 || (e.rootBounds && e.intersectionRect.height >= e.rootBounds.height / 2));
      if (seen) state.onScreen.add(id); else state.onScreen.delete(id);
    }
    queueVisible();
  }

  function queueVisible() {
    if (document.visibilityState !== 'visible') return;
    for (const id of state.onScreen) {
      if (!state.reported.has(id) && !state.failed.has(id)) state.pendingRead.add(id);
    }
    if (state.pendingRead.size && !state.flushTimer) {
      state.flushTimer = setTimeout(flushReads, 200);
    }
  }

  async function flushReads() {
    state.flushTimer = 0;
    const session = state.session;
    const ids = [...state.pendingRead].filter((id) => !state.reported.has(id));
    state.pendingRead.clear();
    for (const batch of chunks(ids, RECEIPT_BATCH)) {
      const list = batch.map((id) => ref(state.messages.get(id)));
      try {
        const { data } = await rr(() => client.sendMessageReadReceipt(list));
        if (session !== state.session) return;
        for (const r of data.messageList || []) {
          if (!r.code) {
            state.reported.add(r.ID);
            setNote(r.ID, 'sent', state.private ? 'read privately' : 'read receipt sent');
          } else {
            state.failed.set(r.ID, r.code);
            setNote(r.ID, 'err', `no receipt: ${r.message || 'error'} (code ${r.code})`);
            if (r.code !== CODE_RECEIPT_NOT_FOUND) showError(`Read receipt for a message from ${state.messages.get(r.ID).from}`, new APIError(r.code, r.message));
          }
        }
      } catch (e) {
        if (e.name === 'AbortError' || session !== state.session) return;
        showError('Sending read receipts', e);
        // Try again later: the messages are still on screen.
        for (const id of batch) state.pendingRead.add(id);
        clearTimeout(state.flushTimer);
        state.flushTimer = setTimeout(flushReads, 5000);
        return;
      }
    }
  }

  // ---- delivery receipts for others' messages, as they arrive ----

  function queueDelivery(id) {
    if (state.delivered.has(id)) return;
    state.pendingDelivery.add(id);
    if (!state.deliveryTimer) state.deliveryTimer = setTimeout(flushDeliveries, 50);
  }

  async function flushDeliveries() {
    state.deliveryTimer = 0;
    const session = state.session;
    const ids = [...state.pendingDelivery].filter((id) => !state.delivered.has(id));
    state.pendingDelivery.clear();
    for (const batch of chunks(ids, RECEIPT_BATCH)) {
      const list = batch.map((id) => ref(state.messages.get(id)));
      try {
        const { data } = await rr(() => client.sendMessageDeliveryReceipt(list));
        if (session !== state.session) return;
        // Refused deliveries (a message without receipt info) are not
        // tried again; the read receipt shows their code.
        for (const r of data.messageList || []) state.delivered.add(r.ID);
      } catch (e) {
        if (e.name === 'AbortError' || session !== state.session) return;
        showError('Sending delivery receipts', e);
        for (const id of batch) state.pendingDelivery.add(id);
        clearTimeout(state.deliveryTimer);
        state.deliveryTimer = setTimeout(flushDeliveries, 5000);
        return;
      }
    }
  }

  // ---- private read receipts ----

  async function loadPrivacy(session) {
    let data;
    try {
      ({ data } = await rr(() => client.getReceiptsPrivate()));
    } catch (e) {
      if (session !== state.session) throw new DOMException('user switched', 'AbortError');
      throw e;
    }
    // A switch to another user meanwhile overtakes this sign-in.
    if (session !== state.session) throw new DOMException('user switched', 'AbortError');
    state.private = data.private;
    el.privacy.checked = data.private;
    el.privacy.dataset.state = 'saved';
  }

  async function changePrivacy() {
    const session = state.session;
    const want = el.privacy.checked;
    el.privacy.dataset.state = 'saving';
    el.privacy.disabled = true;
    try {
      const { data } = await rr(() => client.setReceiptsPrivate(want));
      if (session !== state.session) return;
      state.private = data.private;
      el.privacy.checked = data.private;
      el.privacy.dataset.state = 'saved';
    } catch (e) {
      if (e.name === 'AbortError' || session !== state.session) return;
      el.privacy.checked = state.private;
      el.privacy.dataset.state = 'failed';
      showError('Changing private read receipts', e);
    } finally {
      el.privacy.disabled = false;
    }
  }

  function setNote(id, kind, text) {
    const li = messageEl(id);
    const note = li && li.querySelector('.note');
    if (!note) return;
    note.className = 'note ' + kind;
    note.textContent = text;
  }

  // ---- counts for own messages ----

  async function refreshCounts(ids, session) {
    for (const batch of chunks(ids, QUERY_BATCH)) {
      const list = batch.map((id) => ref(state.messages.get(id)));
      let res;
      try {
        // Resolves with the messages given, each with readReceiptInfo set.
        res = await rr(() => client.getMessageReadReceiptList(list));
      } catch (e) {
        if (e.name === 'AbortError' || session !== state.session) return;
        showError('Fetching read counts', e);
        continue;
      }
      if (session !== state.session) return;
      for (const m of res.data.messageList) {
        const info = m.readReceiptInfo;
        if (!info) continue;
        if (info.code) {
          state.receipts.set(m.ID, { code: info.code, message: info.message });
          if (info.code !== CODE_RECEIPT_NOT_FOUND) showError('Read count', new APIError(info.code, info.message));
        } else {
          applyCounts(m.ID, info, true);
        }
        updateBadge(m.ID);
      }
    }
  }

  // Counts never go backwards; events and query answers may cross, so the
  // larger read and delivered counts win. A query answer is authoritative
  // over an error.
  function applyCounts(id, c, fromQuery) {
    const cur = state.receipts.get(id);
    if (cur && cur.code && !fromQuery) return;
    const total = c.readCount + c.unreadCount;
    let readCount = c.readCount;
    let deliveredCount = typeof c.deliveredCount === 'number' ? c.deliveredCount : c.readCount;
    if (cur && !cur.code) {
      readCount = Math.max(readCount, cur.readCount);
      deliveredCount = Math.max(deliveredCount, cur.deliveredCount);
    }
    deliveredCount = Math.max(deliveredCount, readCount);
    state.receipts.set(id, { readCount, unreadCount: total - readCount, deliveredCount, undeliveredCount: total - deliveredCount });
    updateBadge(id);
    if (state.panel && state.panel.id === id) updatePanelCounts();
  }

  function badgeText(r) {
    if (!r) return '\u2026';
    if (r.code === CODE_RECEIPT_NOT_FOUND) return 'No receipt info';
    if (r.code) return `Error ${r.code}`;
    return r.unreadCount === 0 ? 'All read' : `${r.readCount.toLocaleString('en-US')} read`;
  }

  function updateBadge(id) {
    const li = messageEl(id);
    const badge = li && li.querySelector('.badge');
    if (!badge) return;
    const r = state.receipts.get(id);
    badge.textContent = badgeText(r);
    badge.dataset.all = String(!!r && !r.code && r.unreadCount === 0);
    if (r && r.code) {
      badge.dataset.error = String(r.code);
      badge.title = `${r.message || 'error'} (code ${r.code})`;
    } else {
      delete badge.dataset.error;
      badge.title = r ? `${r.readCount} read, ${r.unreadCount} unread: show who` : '';
    }
    badge.setAttribute('aria-label', `${badge.textContent}. Show who has read it`);
    const ticks = li.querySelector('.ticks');
    if (ticks) {
      const st = !r || r.code ? 'sent' : r.readCount > 0 ? 'read' : r.deliveredCount > 0 ? 'delivered' : 'sent';
      ticks.dataset.state = st;
      ticks.textContent = st === 'sent' ? '\u2713' : '\u2713\u2713';
      const label = !r || r.code ? 'Sent' : `Sent; delivered to ${r.deliveredCount}, read by ${r.readCount}`;
      ticks.title = label;
      ticks.setAttribute('aria-label', label);
    }
  }

  // ---- receipt events, from the client ----

  // The indicator is live when both sockets are open: receipt events (the
  // client's) and new messages (the demo stream).
  function updateConn() {
    const open = (ws) => ws && ws.readyState === WebSocket.OPEN;
    const events = client.netState;
    let st = 'off';
    if (events === ReadReceipt.TYPES.NET_STATE_CONNECTED && open(state.stream)) st = 'live';
    else if (state.user && (events !== ReadReceipt.TYPES.NET_STATE_DISCONNECTED || state.stream)) st = 'connecting';
    el.conn.dataset.state = st;
    el.conn.textContent = st === 'live' ? 'live' : st === 'connecting' ? 'connecting' : 'offline';
  }

  function ownTrackedIDs() {
    return [...state.messages.values()].filter(isOwnTracked).map((m) => m.ID);
  }

  const onReceipts = (event) => {
    for (const it of event.data) {
      if (state.messages.has(it.messageID)) applyCounts(it.messageID, it, false);
    }
  };
  client.on(ReadReceipt.EVENT.MESSAGE_READ_RECEIPT_RECEIVED, onReceipts);
  client.on(ReadReceipt.EVENT.MESSAGE_DELIVERY_RECEIPT_RECEIVED, onReceipts);

  // The same user read messages in another tab (or on another device): show
  // them read here too, and do not report them again.
  client.on(ReadReceipt.EVENT.MESSAGE_READ_BY_SELF, (event) => {
    for (const it of event.data) {
      for (const id of it.messageIDList) {
        if (!state.messages.has(id) || state.reported.has(id)) continue;
        state.reported.add(id);
        state.pendingRead.delete(id);
        setNote(id, 'sent', 'read on another device');
      }
    }
  });

  client.on(ReadReceipt.EVENT.NET_STATE_CHANGE, (event) => {
    const { state: net, reconnected } = event.data;
    const was = state.net;
    state.net = net;
    updateConn();
    if (was === ReadReceipt.TYPES.NET_STATE_CONNECTED && net === ReadReceipt.TYPES.NET_STATE_CONNECTING) {
      showError('Live receipt events', new APIError(ReadReceipt.CODES.NETWORK, 'connection lost; reconnecting'));
    }
    // Events may have been missed while disconnected.
    if (reconnected) refreshCounts(ownTrackedIDs(), state.session);
  });

  // The client gave up reconnecting because the token was refused (it
  // expired, or the server came back with another key): sign in again.
  client.on(ReadReceipt.EVENT.ERROR, async () => {
    const session = state.session;
    if (!state.user) return;
    try {
      await login(state.user, session);
      await refreshCounts(ownTrackedIDs(), session);
    } catch (e) {
      if (e.name !== 'AbortError') showError('Signing in again', e);
    }
  });

  // ---- read / unread member lists ----

  function openMembers(id) {
    const m = state.messages.get(id);
    if (!m) return;
    state.panel = {
      id, session: state.session, filter: 0,
      tabs: [newTab(), newTab()],
    };
    el.sheetQuote.textContent = m.text;
    el.sheet.hidden = false;
    updatePanelCounts();
    selectTab(0);
    el.sheetClose.focus();
  }

  function newTab() {
    return { users: [], cursor: '', done: false, loaded: false, loading: false };
  }

  function closeMembers() {
    state.panel = null;
    el.sheet.hidden = true;
  }

  function updatePanelCounts() {
    const r = state.panel && state.receipts.get(state.panel.id);
    const ok = r && !r.code;
    el.tabRead.textContent = ok ? `Read (${r.readCount.toLocaleString('en-US')})` : 'Read';
    el.tabUnread.textContent = ok ? `Unread (${r.unreadCount.toLocaleString('en-US')})` : 'Unread';
  }

  function selectTab(filter) {
    const p = state.panel;
    if (!p) return;
    p.filter = filter;
    el.tabRead.setAttribute('aria-selected', String(filter === 0));
    el.tabUnread.setAttribute('aria-selected', String(filter === 1));
    el.memberList.setAttribute('aria-labelledby', filter === 0 ? 'tab-read' : 'tab-unread');
    renderTab();
    if (!p.tabs[filter].loaded) loadPage(filter);
  }

  function renderTab() {
    const p = state.panel;
    const t = p.tabs[p.filter];
    el.memberList.replaceChildren(...t.users.map((u) => {
      const li = document.createElement('li');
      li.textContent = u;
      return li;
    }));
    el.memberEmpty.hidden = !(t.loaded && t.done && t.users.length === 0);
    el.memberEmpty.textContent = p.filter === 0 ? 'Nobody has read it yet.' : 'Everyone has read it.';
    el.loadMore.hidden = !t.loaded || t.done;
    el.loadMore.disabled = t.loading;
    // For scripts and tests: which list is shown and where its paging stands.
    el.memberList.dataset.filter = String(p.filter);
    el.memberList.dataset.state = t.loading ? 'loading' : !t.loaded ? 'idle' : t.done ? 'done' : 'more';
  }

  async function loadPage(filter) {
    const p = state.panel;
    const t = p.tabs[filter];
    if (t.loading || t.done) return;
    t.loading = true;
    renderTab();
    try {
      const { data } = await rr(() => client.getGroupMessageReadMemberList({
        message: ref(state.messages.get(p.id)), filter, cursor: t.cursor,
        count: state.messages.get(p.id).to === state.townHall ? TOWN_PAGE_SIZE : PAGE_SIZE,
      }));
      if (state.panel !== p) return;
      // Both lists are in every page; the one asked for has the members.
      t.users.push(...(filter === 0 ? data.readUserIDList : data.unreadUserIDList));
      t.cursor = data.cursor || '';
      t.done = !!data.isCompleted;
      t.loaded = true;
    } catch (e) {
      if (e.name !== 'AbortError') showError(filter === 0 ? 'Loading who has read it' : 'Loading who has not read it', e);
    } finally {
      t.loading = false;
      if (state.panel === p && p.filter === filter) renderTab();
    }
  }

  function refreshPanel() {
    const p = state.panel;
    if (!p) return;
    p.tabs = [newTab(), newTab()];
    refreshCounts([p.id], state.session);
    selectTab(p.filter);
  }

  // ---- the town hall: a million members, read by a simulated crowd ----

  // The town hall is a second group that the server creates in the
  // background when a page opens it; its progress is polled. Its messages
  // go through the same client calls as the chat's: counts, the live
  // events from the crowd's receipts, and the member lists.

  function showTown(st) {
    state.townState = st.state;
    el.town.hidden = false;
    el.town.dataset.state = st.state;
    el.townSize.textContent = `${st.total.toLocaleString('en-US')} members`;
    el.townOpen.hidden = st.state === 'creating' || st.state === 'ready';
    el.townOpen.textContent = st.state === 'failed' ? 'Try again' : `Open the town hall (${st.total.toLocaleString('en-US')} members)`;
    el.townProgress.hidden = st.state !== 'creating';
    el.townBar.max = st.total;
    el.townBar.value = st.memberNum;
    el.townProgressText.textContent = `Creating: ${st.memberNum.toLocaleString('en-US')} of ${st.total.toLocaleString('en-US')} members, ${(st.createMillis / 1000).toFixed(1)} s`;
    el.townReady.hidden = st.state !== 'ready';
    if (st.state === 'failed') showError('Creating the town hall', new APIError('town', st.error || 'failed'));
    if (st.state === 'ready') {
      el.townSize.textContent = `${st.memberNum.toLocaleString('en-US')} members, created in ${(st.createMillis / 1000).toFixed(1)} s`;
      el.townRate.max = String(st.maxRate);
      if (document.activeElement !== el.townRate) {
        el.townRate.value = String(st.rate);
        el.townRateOut.textContent = String(st.rate);
      }
      const fresh = (st.messageList || []).filter((m) => !state.messages.has(m.ID));
      for (const m of fresh) {
        state.messages.set(m.ID, m);
        el.townMessages.append(renderMessage(m));
      }
      const own = fresh.filter(isOwnTracked).map((m) => m.ID);
      if (own.length) refreshCounts(own, state.session);
    }
  }

  async function townRefresh(session) {
    const st = await api('GET', '/demo/townhall');
    if (session !== state.session) return;
    showTown(st);
    if (st.state === 'creating') townPoll(session);
  }

  function townPoll(session) {
    clearTimeout(state.townTimer);
    state.townTimer = setTimeout(async () => {
      if (session !== state.session) return;
      try {
        await townRefresh(session);
      } catch (e) {
        if (e.name === 'AbortError' || session !== state.session) return;
        showError('Town hall progress', e);
        townPoll(session);
      }
    }, TOWN_POLL_MS);
  }

  async function townOpen() {
    const session = state.session;
    el.townOpen.disabled = true;
    try {
      const st = await api('POST', '/demo/townhall', {});
      if (session !== state.session) return;
      showTown(st);
      if (st.state === 'creating') townPoll(session);
    } catch (e) {
      if (e.name !== 'AbortError') showError('Opening the town hall', e);
    } finally {
      el.townOpen.disabled = false;
    }
  }

  async function townPost(ev) {
    ev.preventDefault();
    const text = el.townText.value.trim();
    if (!text) return;
    const session = state.session;
    el.townSend.disabled = true;
    try {
      const m = await api('POST', '/demo/townhall/messages', { text });
      if (session !== state.session) return;
      el.townText.value = '';
      if (!state.messages.has(m.ID)) {
        state.messages.set(m.ID, m);
        el.townMessages.append(renderMessage(m));
        el.townMessages.scrollTop = el.townMessages.scrollHeight;
      }
      await refreshCounts([m.ID], session);
    } catch (e) {
      if (e.name !== 'AbortError') showError('Posting to the town hall', e);
    } finally {
      el.townSend.disabled = false;
    }
  }

  async function townSetRate() {
    const rate = Number(el.townRate.value);
    el.townRateOut.textContent = String(rate);
    try {
      await api('POST', '/demo/townhall', { rate });
    } catch (e) {
      if (e.name !== 'AbortError') showError('Setting the crowd\'s rate', e);
    }
  }

  // ---- wiring ----

  el.composer.addEventListener('submit', send);
  el.privacy.addEventListener('change', changePrivacy);
  el.townOpen.addEventListener('click', townOpen);
  el.townComposer.addEventListener('submit', townPost);
  el.townRate.addEventListener('input', () => { el.townRateOut.textContent = el.townRate.value; });
  el.townRate.addEventListener('change', townSetRate);
  el.text.addEventListener('input', autoGrow);
  el.text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      el.composer.requestSubmit();
    }
  });
  el.tabRead.addEventListener('click', () => selectTab(0));
  el.tabUnread.addEventListener('click', () => selectTab(1));
  el.loadMore.addEventListener('click', () => state.panel && loadPage(state.panel.filter));
  el.sheetClose.addEventListener('click', closeMembers);
  el.sheetRefresh.addEventListener('click', refreshPanel);
  el.sheet.addEventListener('click', (e) => { if (e.target === el.sheet) closeMembers(); });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && state.panel) closeMembers(); });
  document.addEventListener('visibilitychange', queueVisible);

  loadUsers().then(() => {
    const last = sessionStorage.getItem('readreceipt-demo-user');
    if (last && state.users.includes(last)) selectUser(last);
  }).catch((e) => showError('Loading the demo users', e));
})();
