/*
 * connection.js: the live channel, the websocket to /ws.
 *
 * Subscribes to every camera (video plain or with the heatmap overlay, as store.view
 * says), re-subscribes after every reconnect, asks for the alerts missed while away
 * (resume since the last alert seq seen), pings to keep the clock offset fresh, and
 * reconnects with exponential backoff. Close code 4401 means "sign in": it stops there
 * and lets login.js take over. Messages are handed to the handlers main.js gives.
 */
import { dom } from './dom.js';
import { store, storeSeq } from './state.js';

export const UNAUTHORIZED_CLOSE = 4401;
const PING_MS = 20000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 5000;

// Set once by startConnection(): {messages: {type: fn}, frame(header, jpegBytes),
// opened(isReconnect), unauthorized()}. Wiring, not state.
const handlers = { messages: {}, frame() {}, opened() {}, unauthorized() {} };

function wsUrl() {
  return `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws`;
}

function setConn(state) {
  dom.conn.dataset.state = state;
  dom.conn.textContent = state === 'connected' ? 'connected' : `${state}...`;
}

export function send(msg) {
  const ws = store.conn.ws;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

export function sendSubscribe() {
  send({ type: 'subscribe', cameras: ['*'], video: true, overlay: store.view.overlay });
}

function connect() {
  const c = store.conn;
  c.reconnectTimer = null;
  setConn(c.everConnected ? 'reconnecting' : 'connecting');
  let sock;
  try {
    sock = new WebSocket(wsUrl());
  } catch (e) {
    console.warn('clipwatch: websocket failed', e);
    scheduleReconnect();
    return;
  }
  sock.binaryType = 'arraybuffer';
  c.ws = sock;
  sock.onopen = () => onOpen(sock);
  sock.onmessage = (e) => {
    if (typeof e.data === 'string') onText(e.data);
    else onBinary(e.data);
  };
  sock.onclose = (e) => onClose(sock, e.code);
  sock.onerror = () => { /* a close event always follows; handled there */ };
}

function onOpen(sock) {
  const c = store.conn;
  if (sock !== c.ws) return;
  const isReconnect = c.everConnected;
  c.everConnected = true;
  c.connected = true;
  setConn('connected');
  sendSubscribe();
  if (c.seenAlerts) send({ type: 'resume', since: c.lastSeq });
  clearInterval(c.pingTimer);
  c.pingTimer = setInterval(() => send({ type: 'ping' }), PING_MS);
  handlers.opened(isReconnect);
}

function onClose(sock, code) {
  const c = store.conn;
  if (sock !== c.ws) return;  // an old socket we already replaced
  c.ws = null;
  c.connected = false;
  clearInterval(c.pingTimer);
  c.pingTimer = null;
  if (code === UNAUTHORIZED_CLOSE) {  // not signed in (or the session expired)
    setConn('signed out');
    handlers.unauthorized();
    return;
  }
  setConn('reconnecting');
  scheduleReconnect();
}

function scheduleReconnect() {
  const c = store.conn;
  if (c.reconnectTimer) return;
  const delay = c.backoffMs;
  c.backoffMs = Math.min(c.backoffMs * 2, BACKOFF_MAX_MS);
  c.reconnectTimer = setTimeout(connect, delay);
}

// Open the channel unless it is open or a reconnect is already scheduled.
export function ensureConnected() {
  if (!store.conn.ws && !store.conn.reconnectTimer) connect();
}

export function startConnection({ messages, frame, opened, unauthorized }) {
  Object.assign(handlers, { messages, frame, opened, unauthorized });
  store.conn.backoffMs = BACKOFF_MIN_MS;
}

/* ---------- messages: protocol bookkeeping here, the rest to the handlers ---------- */

function setClock(serverTime) {
  if (typeof serverTime === 'number') store.conn.clockOffset = serverTime - Date.now() / 1000;
}

const protocol = {
  hello(msg) {
    // Backoff resets only once the server really talks, so a server that
    // accepts and immediately drops us is not hammered every 0.5 s.
    store.conn.backoffMs = BACKOFF_MIN_MS;
    setClock(msg.server_time);
  },
  pong(msg) { setClock(msg.server_time); },
  alert(msg) {
    if (typeof msg.seq === 'number') {
      store.conn.seenAlerts = true;
      if (msg.seq > store.conn.lastSeq) storeSeq(msg.seq);
    }
  },
  error(msg) { console.warn('clipwatch server error:', msg.message); },
};

// After the page has taken in the hello (its cameras): a fresh server database restarts
// seq numbering; follow it, or every new alert would look like one already seen.
function followServerSeq(msg) {
  const c = store.conn;
  if (c.seenAlerts && typeof msg.last_seq === 'number' && msg.last_seq < c.lastSeq) {
    storeSeq(msg.last_seq);
    send({ type: 'resume', since: c.lastSeq });
  }
}

function onText(data) {
  let msg;
  try { msg = JSON.parse(data); } catch (e) { console.warn('clipwatch: bad message', data); return; }
  const own = protocol[msg.type];
  const handler = handlers.messages[msg.type];
  if (!own && !handler) {
    console.warn('clipwatch: unknown message type', msg.type);
    return;
  }
  if (own) own(msg);
  if (handler) handler(msg);
  if (msg.type === 'hello') followServerSeq(msg);
}

// Binary frame: 4-byte big-endian header length, JSON header, JPEG bytes.
function onBinary(buf) {
  if (!(buf instanceof ArrayBuffer) || buf.byteLength < 4) return;
  const headerLen = new DataView(buf).getUint32(0, false);
  if (4 + headerLen > buf.byteLength) { console.warn('clipwatch: truncated frame'); return; }
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, headerLen)));
  } catch (e) {
    console.warn('clipwatch: bad frame header', e);
    return;
  }
  handlers.frame(header, new Uint8Array(buf, 4 + headerLen));
}
