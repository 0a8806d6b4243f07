// The demo page: join form, message list, send box and moderator buttons, wired to one ChatConnection.
// URL parameters prefill the form: ?room=lobby&name=Ana&mod=1 (mod=1 asks for a moderator token).

import { fetchToken, TokenRequestError } from './demo-backend.js';
import { describeError } from './errors.js';
import { ChatConnection, State } from './ivs-chat.js';
import { markDeleted, messageItem, renderPeople, systemItem } from './views.js';

const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const DISPLAY_NAME = /^[\p{L}\p{N}_ .'-]{1,32}$/u; // what the server accepts (Python's \w plus " .'-")
const MAX_LIST_ITEMS = 500; // older messages are dropped from the page so a long session stays light
const PRESENCE_EVERY_MS = 10_000;
const MOD_REASON = 'Against the room rules'; // sent as Reason; a real app would ask the moderator

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  join: $('join'),
  room: $('room'),
  name: $('display-name'),
  moderator: $('moderator'),
  joinButton: $('join-button'),
  joinError: $('join-error'),
  chat: $('chat'),
  roomTitle: $('room-title'),
  role: $('role'),
  leave: $('leave'),
  list: $('messages'),
  notice: $('notice'),
  send: $('send'),
  message: $('message'),
  sendButton: $('send-button'),
  counter: $('counter'),
  people: $('people'),
};

/** The current chat session, or null before joining / after leaving. */
let session = null;

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function setNotice(text) {
  ui.notice.textContent = text;
}

function codePoints(text) {
  return [...text].length;
}

function updateCounter() {
  const max = session ? session.maxLength : 500;
  const n = codePoints(ui.message.value);
  const over = n - max;
  ui.counter.textContent = over > 0 ? `${n} / ${max}: ${over} over the limit` : `${n} / ${max}`;
  ui.counter.classList.toggle('over', over > 0);
}

function setSendEnabled(enabled) {
  ui.message.disabled = !enabled;
  ui.sendButton.disabled = !enabled;
}

function append(li) {
  const list = ui.list;
  // Follow the conversation only if the reader is already at the bottom (or wrote this line).
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  list.append(li);
  while (list.children.length > MAX_LIST_ITEMS) {
    const first = list.firstElementChild;
    if (first.dataset.id) session.messages.delete(first.dataset.id);
    first.remove();
  }
  if (atBottom || li.classList.contains('mine')) list.scrollTop = list.scrollHeight;
}

function nameOf(userId) {
  return session.names.get(userId) || userId;
}

// Who is here comes from parley's presence extension (GET_PRESENCE → PRESENCE frame), asked on
// connect and every PRESENCE_EVERY_MS; it is one request, well inside the 10 requests/s quota.
function refreshPeople() {
  if (!session || !session.connection || session.connection.state !== State.CONNECTED) return;
  try {
    session.connection.getPresence();
  } catch {
    // not connected after all: the next connect asks again
  }
}

function onPresence({ frame }) {
  const users = Array.isArray(frame.Users) ? frame.Users : [];
  session.present = new Set(users.map((user) => String(user.UserId || '')));
  const people = users.map((user) => {
    const userId = String(user.UserId || '');
    const name = (user.Attributes && user.Attributes.displayName) || userId;
    session.names.set(userId, name);
    return { name, mine: userId === session.userId };
  });
  renderPeople(ui.people, people);
}

// --- frames from the room ----------------------------------------------------------------------

function onMessage({ frame }) {
  const sender = frame.Sender || {};
  const userId = String(sender.UserId || '');
  const displayName = (sender.Attributes && sender.Attributes.displayName) || userId || 'unknown';
  session.names.set(userId, displayName);
  if (!session.present.has(userId)) refreshPeople(); // someone new is talking: ask who is here
  const m = {
    id: frame.Id,
    userId,
    senderName: displayName,
    mine: userId === session.userId,
    sendTime: frame.SendTime,
    content: String(frame.Content ?? ''),
  };
  const li = messageItem(m, session.moderator ? moderation : null);
  session.messages.set(m.id, li);
  append(li);
  refreshPeople();
}

function onEvent({ frame }) {
  const attributes = frame.Attributes || {};
  if (frame.EventName === 'aws:DELETE_MESSAGE') {
    // The JS SDK reads MessageID (capital D); the docs name MessageId. parley sends both.
    const li = session.messages.get(attributes.MessageID || attributes.MessageId);
    if (li) markDeleted(li, attributes.Reason);
  } else if (frame.EventName === 'aws:DISCONNECT_USER') {
    const userId = attributes.UserId;
    const reason = attributes.Reason ? ` (${attributes.Reason})` : '';
    if (userId === session.userId) {
      session.kicked = true; // the close frame that follows must not look like an ordinary drop
      append(systemItem(`You were disconnected by a moderator${reason}.`));
    } else {
      append(systemItem(`${nameOf(userId)} was disconnected by a moderator${reason}.`));
    }
    refreshPeople();
  } else {
    append(systemItem(`Event ${frame.EventName}`));
  }
}

function onChatError({ frame, request }) {
  setNotice(describeError(frame, request, session.maxLength));
  // Give the text back so it can be shortened or resent, unless something new was typed meanwhile.
  if (request && request.Action === 'SEND_MESSAGE' && !ui.message.value) {
    ui.message.value = request.Content;
    updateCounter();
  }
}

function onState({ state, reason }) {
  const where = `${session.roomName} as ${session.displayName}`;
  if (state === State.CONNECTED) {
    setStatus(state, `Connected to ${where}`);
    refreshPeople();
    setSendEnabled(true);
    ui.leave.textContent = 'Leave';
    if (!session.joinedOnce) {
      session.joinedOnce = true;
      ui.message.focus();
    }
    return;
  }
  setSendEnabled(false);
  if (state === State.DISCONNECTED) {
    const text = session.kicked ? 'Disconnected by a moderator' : `Disconnected: ${reason}`;
    setStatus(state, text);
    setNotice(session.kicked ? 'A moderator disconnected you from this room.' : reason);
    ui.leave.textContent = 'Back to join';
  } else {
    setStatus(state, state === State.CONNECTING ? 'Connecting…' : `Reconnecting… ${reason}`);
  }
}

// --- moderator actions -------------------------------------------------------------------------

function act(action) {
  try {
    action();
    setNotice('');
  } catch (error) {
    setNotice(`Not connected: ${error.message}.`);
  }
}

const moderation = {
  onDelete: (m) => act(() => session.connection.deleteMessage(m.id, MOD_REASON)),
  onDisconnect: (m) => act(() => session.connection.disconnectUser(m.userId, MOD_REASON)),
};

// --- join, send, leave -------------------------------------------------------------------------

function tokenProvider(first) {
  let prefetched = first; // the join form's own request: it already validated the inputs
  return async () => {
    const vended = prefetched ||
      (await fetchToken({
        room: session.roomName,
        displayName: session.displayName,
        moderator: session.moderator,
        userId: session.userId, // same chat user after a reconnect
      }));
    prefetched = null;
    session.maxLength = vended.maximumMessageLength;
    updateCounter();
    return { token: vended.token, url: vended.gatewayUrl };
  };
}

async function join(event) {
  event.preventDefault();
  ui.joinError.textContent = '';
  const roomName = ui.room.value.trim();
  const displayName = ui.name.value.trim();
  if (!ROOM_NAME.test(roomName)) {
    ui.joinError.textContent = 'Room: use 1 to 64 letters, digits, “-” or “_”.';
    ui.room.focus();
    return;
  }
  if (!DISPLAY_NAME.test(displayName)) {
    ui.joinError.textContent = 'Display name: use 1 to 32 letters, digits, spaces, “.”, “\'” or “-”.';
    ui.name.focus();
    return;
  }
  ui.joinButton.disabled = true;
  let first;
  try {
    first = await fetchToken({ room: roomName, displayName, moderator: ui.moderator.checked });
  } catch (error) {
    const words = error instanceof TokenRequestError && error.status === 429
      ? `Slow down: ${error.message}`
      : `Could not join: ${error.message}`;
    ui.joinError.textContent = words;
    return;
  } finally {
    ui.joinButton.disabled = false;
  }
  startSession(first);
}

function startSession(first) {
  session = {
    roomName: first.roomName,
    displayName: first.displayName,
    userId: first.userId,
    moderator: first.capabilities.includes('DELETE_MESSAGE'),
    maxLength: first.maximumMessageLength,
    messages: new Map(), // message Id -> <li>
    names: new Map(), // userId -> display name, learnt from messages (events carry only the id)
    present: new Set(), // userIds in the last PRESENCE frame
    kicked: false,
    joinedOnce: false,
    connection: null,
  };
  ui.list.replaceChildren();
  ui.roomTitle.textContent = `Room: ${first.roomName}`;
  ui.role.textContent = session.moderator ? 'Moderator view' : '';
  ui.message.value = '';
  setNotice('');
  updateCounter();
  refreshPeople();
  ui.join.hidden = true;
  ui.chat.hidden = false;
  const connection = new ChatConnection(tokenProvider(first));
  session.connection = connection;
  // Only the current session's connection may touch the page (a left session can still be settling).
  const current = (handler) => (e) => {
    if (session && session.connection === connection) handler(e.detail);
  };
  connection.addEventListener('state', current(onState));
  connection.addEventListener('message', current(onMessage));
  connection.addEventListener('event', current(onEvent));
  connection.addEventListener('presence', current(onPresence));
  connection.addEventListener('chaterror', current(onChatError));
  connection.connect();
}

function send(event) {
  event.preventDefault();
  const text = ui.message.value;
  if (!text.trim()) {
    setNotice('Type a message first.');
    return;
  }
  // An over-long message is still sent: the room's limit is the server's to enforce (it may have
  // changed since our token), and its ERROR 400 is shown in words like any other rejection.
  try {
    session.connection.sendMessage(text);
  } catch (error) {
    setNotice(`Not sent: ${error.message}.`);
    return;
  }
  setNotice('');
  ui.message.value = '';
  updateCounter();
}

function leave() {
  if (session && session.connection.state !== State.DISCONNECTED) session.connection.close();
  session = null;
  ui.chat.hidden = true;
  ui.join.hidden = false;
  setStatus(State.IDLE, 'Not connected');
  ui.name.focus();
}

function init() {
  const params = new URLSearchParams(location.search);
  if (params.get('room')) ui.room.value = params.get('room');
  if (params.get('name')) ui.name.value = params.get('name');
  ui.moderator.checked = params.get('mod') === '1';
  ui.join.addEventListener('submit', join);
  ui.send.addEventListener('submit', send);
  ui.message.addEventListener('input', updateCounter);
  ui.leave.addEventListener('click', leave);
  setInterval(refreshPeople, PRESENCE_EVERY_MS);
  updateCounter();
  (ui.name.value ? ui.joinButton : ui.name).focus();
}

init();
