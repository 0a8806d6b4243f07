// Drives the official, unmodified `amazon-ivs-chat-messaging` SDK against a parley gateway.
//
// Usage: node sdk_client.mjs <scenario>  < config.json
//   config = {"url": "ws://127.0.0.1:PORT/", "tokens": {"<client>": ["<token>", ...], ...}, "params": {...}}
// Every SDK client (ChatRoom) is named; its tokenProvider pops the next token from tokens[<client>] (tokens are
// single use). No expiration times are handed to the SDK, so it never opens its proactive refresh connection.
//
// Output: one JSON object per line on stdout, each with "client" and "event". Listener events are
// connecting/connect/disconnect/message/event/messageDelete/userDisconnect, plus "tokenFetch" (each tokenProvider
// call) and "result" (the settlement of an SDK promise: {"op", "ok", "value"} or {"op", "ok": false, "error"}).
// Dates are printed as ISO strings (JSON.stringify → Date#toJSON) and their type is reported in "sendTimeType".
// The last line is {"event": "done"} (exit 0), or {"event": "fail", "error"} (exit 1) when a step did not happen
// within its time, or on the global ~10 s deadline. SDK logs go to stderr.

import { ChatRoom, DeleteMessageRequest, DisconnectUserRequest, SendMessageRequest } from 'amazon-ivs-chat-messaging';
import { WebSocket } from 'ws';

globalThis.WebSocket = WebSocket; // Node 20 has no global WebSocket; the SDK calls `new WebSocket(url, token)`

const GLOBAL_DEADLINE_MS = 10_000;
const STEP_TIMEOUT_MS = 3_000;

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

function fail(error) {
  emit({ event: 'fail', error: String(error?.stack ?? error) });
  process.exitCode = 1;
  process.stdout.write('', () => process.exit(1));
}

const deadline = setTimeout(() => fail(`global deadline of ${GLOBAL_DEADLINE_MS} ms reached`), GLOBAL_DEADLINE_MS);

const stderrLogger = {
  debug: (msg, ...args) => console.error('[sdk debug]', msg, ...args),
  info: (msg, ...args) => console.error('[sdk info]', msg, ...args),
  error: (msg, ...args) => console.error('[sdk error]', msg, ...args),
};

const typeOf = (value) => Object.prototype.toString.call(value);

// The SDK's result objects as plain JSON: every field, plus the runtime type of sendTime.
function plain(value) {
  if (value == null || typeof value !== 'object') return value;
  const out = JSON.parse(JSON.stringify(value));
  if ('sendTime' in value) out.sendTimeType = typeOf(value.sendTime);
  return out;
}

// A ChatError from a rejected promise, or a thrown Error from the SDK call itself.
function errorInfo(error) {
  if (error instanceof Error) return { thrown: true, name: error.name, message: error.message };
  return plain(error);
}

class Client {
  constructor(name, url, tokens, options = {}) {
    this.name = name;
    this.tokens = [...(tokens ?? [])];
    this.fetches = 0;
    this.seen = []; // [eventName, payload]
    this.waiters = [];
    this.room = new ChatRoom({
      regionOrUrl: url,
      tokenProvider: async () => {
        this.fetches += 1;
        this.record('tokenFetch', { n: this.fetches });
        const token = this.tokens.shift();
        if (token === undefined) throw new Error(`no tokens left for ${name}`);
        return { token };
      },
      ...options,
    });
    this.room.logger = stderrLogger;
    this.room.logLevel = 'debug';
    this.room.addListener('connecting', () => this.record('connecting', {}));
    this.room.addListener('connect', () => this.record('connect', { state: this.room.state }));
    this.room.addListener('disconnect', (reason) => this.record('disconnect', { reason, state: this.room.state }));
    for (const name of ['message', 'event', 'messageDelete', 'userDisconnect']) {
      this.room.addListener(name, (payload) => this.record(name, { value: plain(payload) }));
    }
  }

  record(event, fields) {
    const line = { client: this.name, event, ...fields };
    emit(line);
    this.seen.push(line);
    for (const waiter of [...this.waiters]) {
      if (waiter.event === event && waiter.match(line)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        clearTimeout(waiter.timer);
        waiter.resolve(line);
      }
    }
  }

  // Resolves with the first (past or future) observation of `event` that satisfies `match`.
  waitFor(event, match = () => true, timeoutMs = STEP_TIMEOUT_MS) {
    const already = this.seen.find((line) => line.event === event && match(line));
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const waiter = { event, match, resolve };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`${this.name}: no "${event}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async connect() {
    this.room.connect();
    await this.waitFor('connect');
  }

  // Runs one SDK request and prints how its promise settled (or that it did not within the step time); returns
  // {ok, value|error}.
  async call(op, request, timeoutMs = STEP_TIMEOUT_MS) {
    let timer;
    const unsettled = new Promise((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, error: { unsettled: true, afterMs: timeoutMs } }), timeoutMs);
    });
    const settled = (async () => {
      try {
        return { ok: true, value: plain(await this.room[op](request)) };
      } catch (error) {
        return { ok: false, error: errorInfo(error) };
      }
    })();
    const outcome = await Promise.race([settled, unsettled]);
    clearTimeout(timer);
    this.record('result', { op, requestId: request.requestId, ...outcome });
    return outcome;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const scenarios = {
  // (a)(b)(c): two clients connect; alice sends, both receive it, alice's promise resolves with the message.
  async chat({ url, tokens, params }) {
    const alice = new Client('alice', url, tokens.alice);
    const bob = new Client('bob', url, tokens.bob);
    await Promise.all([alice.connect(), bob.connect()]);
    const sent = await alice.call('sendMessage', new SendMessageRequest(params.content, params.attributes));
    if (!sent.ok) throw new Error('sendMessage did not resolve');
    await bob.waitFor('message', (line) => line.value.id === sent.value.id);
    await alice.waitFor('message', (line) => line.value.id === sent.value.id);
    return [alice, bob];
  },

  // (d): a moderator deletes alice's message; everyone (bob included) gets messageDelete.
  async delete({ url, tokens, params }) {
    const [alice, bob] = await scenarios.chat({ url, tokens, params });
    const mod = new Client('mod', url, tokens.mod);
    await mod.connect();
    const id = alice.seen.find((line) => line.event === 'result').value.id;
    const deleted = await mod.call('deleteMessage', new DeleteMessageRequest(id, params.reason));
    if (!deleted.ok) throw new Error('deleteMessage did not resolve');
    await bob.waitFor('messageDelete', (line) => line.value.messageId === id);
    await alice.waitFor('messageDelete', (line) => line.value.messageId === id);
    return [alice, bob, mod];
  },

  // (e): a moderator disconnects bob; bob sees userDisconnect, then disconnect('serverDisconnect'), and must not
  // reconnect (it has a spare token it must not fetch). alice stays connected.
  async disconnect({ url, tokens, params }) {
    const alice = new Client('alice', url, tokens.alice);
    const bob = new Client('bob', url, tokens.bob);
    const mod = new Client('mod', url, tokens.mod);
    await Promise.all([alice.connect(), bob.connect(), mod.connect()]);
    const done = await mod.call('disconnectUser', new DisconnectUserRequest('bob', params.reason));
    if (!done.ok) throw new Error('disconnectUser did not resolve');
    await bob.waitFor('userDisconnect');
    await bob.waitFor('disconnect');
    await sleep(params.settleMs ?? 500); // time for a (wrong) reconnect attempt to show up
    emit({ client: 'bob', event: 'final', state: bob.room.state, fetches: bob.fetches });
    emit({ client: 'alice', event: 'final', state: alice.room.state, fetches: alice.fetches });
    return [alice, mod];
  },

  // (f): too long for the room (400), then a short one still works on the same connection; no capability (403).
  async errors({ url, tokens, params }) {
    const alice = new Client('alice', url, tokens.alice);
    const mute = new Client('mute', url, tokens.mute);
    await Promise.all([alice.connect(), mute.connect()]);
    await alice.call('sendMessage', new SendMessageRequest(params.long));
    await alice.call('sendMessage', new SendMessageRequest(params.short));
    await mute.call('sendMessage', new SendMessageRequest(params.short));
    emit({ client: 'alice', event: 'final', state: alice.room.state, fetches: alice.fetches });
    emit({ client: 'mute', event: 'final', state: mute.room.state, fetches: mute.fetches });
    return [alice, mute];
  },

  // A seed protocol front's client in the same room, driven from Python: the SDK client 'ivs' connects, sends
  // params.send ([[content, attributes], ...]) one after the other, then waits for params.expect messages whose
  // sender is params.peer (the front client, which sends once Python saw the SDK's messages arrive).
  async peer({ url, tokens, params }) {
    const ivs = new Client('ivs', url, tokens.ivs);
    await ivs.connect();
    for (const [content, attributes] of params.send) {
      const sent = await ivs.call('sendMessage', new SendMessageRequest(content, attributes));
      if (!sent.ok) throw new Error('sendMessage did not resolve');
    }
    const fromPeer = () => ivs.seen.filter((line) => line.event === 'message' && line.value.sender.userId === params.peer);
    await ivs.waitFor('message', () => fromPeer().length >= params.expect);
    return [ivs];
  },

  // (g): every token the app hands out is forged; the SDK retries and finally gives up with 'socketError'.
  async badtoken({ url, tokens }) {
    const eve = new Client('eve', url, tokens.eve);
    eve.room.connect();
    await eve.waitFor('disconnect');
    await sleep(300); // a further (wrong) retry would show up as another tokenFetch
    emit({ client: 'eve', event: 'final', state: eve.room.state, fetches: eve.fetches });
    return [];
  },
};

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`unknown scenario ${JSON.stringify(name)}; known: ${Object.keys(scenarios)}`);
  const config = await readStdin();
  const open = await scenario(config);
  for (const client of open) client.room.disconnect(); // 'clientDisconnect': closes with 1000
  await sleep(50);
  clearTimeout(deadline);
  emit({ event: 'done' });
  process.stdout.write('', () => process.exit(0));
}

main().catch(fail);
