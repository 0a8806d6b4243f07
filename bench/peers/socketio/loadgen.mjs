// One load-generator worker, the same design for both servers under test (bench/peers/compare.py runs
// several and merges what they print): raw `ws` clients, one sender per room paced by a 5 ms ticker,
// fixed-size bodies that carry the send time, and every received frame JSON-parsed.
//
//   protocol "ivs":      the IVS Chat messaging protocol (chat token as Sec-WebSocket-Protocol,
//                        SEND_MESSAGE actions, MESSAGE events; parley's gateways).
//   protocol "socketio": Engine.IO 4 / Socket.IO 5 packets over a WebSocket (open "0", connect "40",
//                        event `42["msg",content]`, ping "2" answered with pong "3").
//
// usage: node loadgen.mjs <config.json>; it then speaks JSON lines: stdout reports
// {"event":"connected"}, {"event":"sent",...} and {"event":"final",...}; stdin takes {"go":true} and
// {"expect":{room: accepted}}. Nothing here decides pass or fail: the runner does.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const ivs = config.protocol === "ivs";
const BUCKET_MS = 0.1; // latency histogram resolution
const histogram = new Map(); // bucket -> count
const received = new Map(); // room -> bench messages received by this worker's clients (all of them)
const errors = {}; // ERROR code -> count (ivs) / "closed" -> count
const rejected = new Map(); // room -> this worker's sends answered with an ERROR frame
let expected = null; // room -> accepted messages, from the runner once every worker has sent
let drained = null;

const now = () => performance.timeOrigin + performance.now();
const emit = (record, then) => process.stdout.write(JSON.stringify(record) + "\n", then);

function body(seq) {
  // "<send ms>|<seq>|" then padding to config.body bytes; the stamp is what latency is measured from
  const head = `${now().toFixed(3)}|${seq}|`;
  return head + "x".repeat(Math.max(0, config.body - head.length));
}

function onContent(client, content) {
  const bar = content.indexOf("|");
  if (bar < 0) return;
  const latency = now() - Number(content.slice(0, bar));
  const bucket = Math.max(0, Math.floor(latency / BUCKET_MS));
  histogram.set(bucket, (histogram.get(bucket) ?? 0) + 1);
  received.set(client.room, (received.get(client.room) ?? 0) + 1);
  if (expected !== null) checkDrained();
}

function onFrame(client, data) {
  const text = data.toString();
  if (ivs) {
    const frame = JSON.parse(text);
    if (frame.Type === "MESSAGE") onContent(client, frame.Content);
    else if (frame.Type === "ERROR") {
      errors[frame.ErrorCode] = (errors[frame.ErrorCode] ?? 0) + 1;
      const room = String(frame.RequestId ?? "").split(".")[0]; // RequestId is "<room>.<seq>"
      rejected.set(room, (rejected.get(room) ?? 0) + 1);
    }
    return;
  }
  // Engine.IO packet type first: 4 message (then Socket.IO type: 2 event, 0 connect), 2 ping, 0 open
  if (text.startsWith("42")) {
    const [, content] = JSON.parse(text.slice(2));
    onContent(client, content);
  } else if (text === "2") {
    client.ws.send("3");
  } else if (text.startsWith("0")) {
    JSON.parse(text.slice(1)); // the open packet (sid, pingInterval): parsed like every other frame
    client.ws.send("40");
  } else if (text.startsWith("40")) {
    JSON.parse(text.slice(2));
    client.ready();
  }
}

function connect(spec) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(spec.url, spec.subprotocol ? [spec.subprotocol] : [], { perMessageDeflate: false });
    const client = { ...spec, ws, ready: () => resolve(client) };
    ws.on("message", (data) => onFrame(client, data));
    ws.on("error", reject);
    ws.on("close", () => {
      if (!stopping) errors.closed = (errors.closed ?? 0) + 1;
    });
    if (ivs) ws.on("open", () => client.ready());
  });
}

async function connectAll(specs, concurrency) {
  const clients = new Array(specs.length);
  let next = 0;
  async function lane() {
    while (next < specs.length) {
      const i = next++;
      clients[i] = await connect(specs[i]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, lane));
  return clients;
}

let stopping = false;

function send(client, seq) {
  const content = body(seq);
  if (ivs) client.ws.send(`{"Action":"SEND_MESSAGE","RequestId":"${client.room}.${seq}","Content":"${content}"}`);
  else client.ws.send(`42["msg","${content}"]`);
}

function run(clients) {
  const senders = clients.filter((c) => c.sender);
  const sent = new Map(senders.map((c) => [c.room, 0]));
  const started = now();
  const end = started + config.duration * 1000;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const t = Math.min(now(), end);
      for (const client of senders) {
        const due = Math.floor(((t - started) / 1000) * config.rates[client.room]);
        for (let n = sent.get(client.room); n < due; n++) send(client, n);
        sent.set(client.room, Math.max(due, sent.get(client.room)));
      }
      if (t >= end) {
        clearInterval(timer);
        resolve({ sent: Object.fromEntries(sent), seconds: (now() - started) / 1000 });
      }
    }, 5);
  });
}

function checkDrained() {
  if (drained !== null) return;
  for (const [room, members] of membersByRoom) {
    if ((received.get(room) ?? 0) < (expected[room] ?? 0) * members) return;
  }
  drained = now();
  finish();
}

let membersByRoom = new Map();
let finishTimer = null;
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(finishTimer);
  let want = 0;
  let got = 0;
  for (const [room, members] of membersByRoom) {
    want += (expected[room] ?? 0) * members;
    got += received.get(room) ?? 0;
  }
  const final = {
    event: "final",
    expected: want,
    received: got,
    lost: Math.max(0, want - got),
    duplicates: Math.max(0, got - want),
    drained_at: drained,
    errors,
    bucket_ms: BUCKET_MS,
    histogram: Object.fromEntries(histogram),
  };
  stopping = true;
  for (const client of clients) client.ws.terminate();
  emit(final, () => process.exit(0)); // exit only once written: it would cut off a pipe's pending output
}

const clients = await connectAll(config.clients, config.connectConcurrency ?? 200);
for (const client of clients) membersByRoom.set(client.room, (membersByRoom.get(client.room) ?? 0) + 1);
emit({ event: "connected", clients: clients.length });

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  if (command.go) {
    const result = await run(clients);
    await new Promise((r) => setTimeout(r, 1000)); // late ERROR replies to the last sends
    const accepted = {};
    for (const [room, n] of Object.entries(result.sent)) accepted[room] = n - (rejected.get(room) ?? 0);
    emit({ event: "sent", sent: result.sent, accepted, seconds: result.seconds, errors: { ...errors } });
  } else if (command.expect) {
    expected = command.expect;
    // Late is not lost: wait while deliveries keep coming, give up after drainTimeout s without one.
    let seen = -1;
    const stalled = () => {
      const now = [...received.values()].reduce((a, b) => a + b, 0);
      if (now === seen) return finish();
      seen = now;
      finishTimer = setTimeout(stalled, (config.drainTimeout ?? 5) * 1000);
    };
    stalled();
    checkDrained();
  }
}
