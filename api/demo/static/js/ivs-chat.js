// A raw Amazon IVS Chat messaging client for the browser: the public WebSocket protocol and nothing else.
//
// The token is the only Sec-WebSocket-Protocol value (`new WebSocket(url, token)`); frames are JSON text
// (SEND_MESSAGE, DELETE_MESSAGE, DISCONNECT_USER out; MESSAGE, EVENT, ERROR in). Tokens are single use,
// so every (re)connection asks the tokenProvider for a fresh one. Reconnect policy, like the IVS SDK:
// ERROR 401 or a socket dropped without a close frame -> reconnect with a new token; a close frame from
// the server (e.g. after DISCONNECT_USER) -> stay disconnected. Unlike the SDK, retries back off.

/** Connection states, as shown to the user. */
export const State = Object.freeze({
  IDLE: 'idle',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  DISCONNECTED: 'disconnected',
});

// Close codes after which a new connection can succeed: going away (gateway shutdown), abnormal
// drop, server error/restart, and parley's session-expired code. Normally an ERROR 401 precedes them.
const RETRY_CLOSE_CODES = new Set([1001, 1006, 1011, 1012, 1013, 4001]);
const MAX_FAILED_ATTEMPTS = 6; // in a row without ever opening: then give up and say so
const MAX_PENDING = 200;

/** A UUID v4 from getRandomValues, which (unlike crypto.randomUUID) also works on plain-http LAN origins. */
export function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Events (CustomEvent.detail):
 *  - 'state'     {state, reason}            connection state changed
 *  - 'message'   {frame, request}           a MESSAGE (request: our own pending SEND_MESSAGE, if it is the echo)
 *  - 'event'     {frame}                    an EVENT (aws:DELETE_MESSAGE, aws:DISCONNECT_USER, app events)
 *  - 'chaterror' {frame, request}           an ERROR other than 401 (request: what we sent, if known)
 */
export class ChatConnection extends EventTarget {
  #tokenProvider;
  #ws = null;
  #generation = 0; // bumps on every new attempt; callbacks of older sockets are ignored
  #stopped = true;
  #failures = 0;
  #retryTimer = 0;
  #pending = new Map(); // RequestId -> {action, ...fields}
  state = State.IDLE;

  /** @param {() => Promise<{token: string, url: string}>} tokenProvider fetches a fresh, single-use token */
  constructor(tokenProvider) {
    super();
    this.#tokenProvider = tokenProvider;
  }

  connect() {
    this.#stopped = false;
    this.#failures = 0;
    this.#open(State.CONNECTING);
  }

  /** Close on purpose (Leave): no reconnect. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#generation++;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) ws.close(1000, 'Left');
    this.#setState(State.DISCONNECTED, 'You left the room.');
  }

  sendMessage(content, attributes) {
    return this.#send({ Action: 'SEND_MESSAGE', Content: content, ...(attributes ? { Attributes: attributes } : {}) });
  }

  deleteMessage(id, reason) {
    return this.#send({ Action: 'DELETE_MESSAGE', Id: id, ...(reason ? { Reason: reason } : {}) });
  }

  /** parley extension: who is connected to the room now (answered with a PRESENCE frame). */
  getPresence() {
    return this.#send({ Action: 'GET_PRESENCE' });
  }

  disconnectUser(userId, reason) {
    return this.#send({ Action: 'DISCONNECT_USER', UserId: userId, ...(reason ? { Reason: reason } : {}) });
  }

  #send(request) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('Not connected');
    const requestId = uuid4();
    // Property order as the SDK sends it: Action, RequestId, then the operation's fields.
    const { Action, ...fields } = request;
    ws.send(JSON.stringify({ Action, RequestId: requestId, ...fields }));
    if (this.#pending.size >= MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value);
    this.#pending.set(requestId, request);
    return requestId;
  }

  #setState(state, reason = '') {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, reason } }));
  }

  async #open(state) {
    const generation = ++this.#generation;
    this.#setState(state);
    let credentials;
    try {
      credentials = await this.#tokenProvider();
    } catch (error) {
      if (generation === this.#generation && !this.#stopped) this.#retry(`Could not get a chat token: ${error.message}`);
      return;
    }
    if (generation !== this.#generation || this.#stopped) return;
    let ws;
    try {
      ws = new WebSocket(credentials.url, credentials.token);
    } catch (error) {
      this.#retry(`Could not open the connection: ${error.message}`);
      return;
    }
    this.#ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      if (ws !== this.#ws) return;
      opened = true;
      this.#failures = 0;
      this.#setState(State.CONNECTED);
    });
    ws.addEventListener('message', (event) => {
      if (ws === this.#ws) this.#onFrame(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (ws !== this.#ws) return; // a socket we already replaced or closed on purpose
      this.#ws = null;
      if (this.#stopped) return;
      if (opened && !RETRY_CLOSE_CODES.has(event.code)) {
        // A close frame from the server means "do not come back" (spec §1.4), e.g. DISCONNECT_USER.
        this.#stopped = true;
        this.#setState(State.DISCONNECTED, event.reason || `Connection closed (code ${event.code}).`);
        return;
      }
      // Dropped, or the upgrade was refused (the browser cannot tell us why): try a fresh token.
      this.#retry(opened ? 'Connection lost.' : 'Could not connect.');
    });
  }

  #retry(reason) {
    this.#failures++;
    if (this.#failures > MAX_FAILED_ATTEMPTS) {
      this.#stopped = true;
      this.#setState(State.DISCONNECTED, `${reason} Gave up after ${MAX_FAILED_ATTEMPTS} attempts.`);
      return;
    }
    // 0.25 s, 0.5 s, 1 s ... up to 8 s: quick after a single drop, gentle on a server that is down.
    const delay = Math.min(8000, 250 * 2 ** (this.#failures - 1));
    this.#setState(State.RECONNECTING, reason);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#open(State.RECONNECTING), delay);
  }

  /** ERROR 401: the session is over (expired token, gateway going away). Reconnect with a new token now. */
  #renew() {
    const ws = this.#ws;
    this.#ws = null; // its close event is now ignored
    if (ws) ws.close(1000, 'Renewing token');
    this.#open(State.RECONNECTING);
  }

  #onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // like the SDK: a frame that does not parse is dropped
    }
    if (!frame || typeof frame !== 'object') return;
    const request = frame.RequestId ? this.#pending.get(frame.RequestId) : undefined;
    if (frame.RequestId) this.#pending.delete(frame.RequestId);
    switch (frame.Type) {
      case 'MESSAGE':
        this.dispatchEvent(new CustomEvent('message', { detail: { frame, request } }));
        break;
      case 'EVENT':
        this.dispatchEvent(new CustomEvent('event', { detail: { frame } }));
        break;
      case 'PRESENCE':
        this.dispatchEvent(new CustomEvent('presence', { detail: { frame } }));
        break;
      case 'ERROR':
        if (frame.ErrorCode === 401) {
          this.#renew();
        } else {
          this.dispatchEvent(new CustomEvent('chaterror', { detail: { frame, request } }));
        }
        break;
      default:
        break; // unknown Type: ignored, as the SDK does
    }
  }
}
