// DOM for the message list and the people panel. All user content goes in through textContent
// (never innerHTML), so a message, name or reason can never become markup.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function clockTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function button(label, accessibleName, className, onClick) {
  const b = el('button', `small ${className}`, label);
  b.type = 'button';
  b.setAttribute('aria-label', accessibleName);
  b.addEventListener('click', onClick);
  return b;
}

/**
 * One chat message. With `moderation`, it gets Delete and Disconnect buttons.
 * @param {{id: string, userId: string, senderName: string, mine: boolean, sendTime: string, content: string}} m
 * @param {{onDelete: Function, onDisconnect: Function}|null} moderation
 */
export function messageItem(m, moderation) {
  const li = el('li', m.mine ? 'msg mine' : 'msg');
  li.dataset.id = m.id;
  li.dataset.userId = m.userId;
  const head = el('div', 'msg-head');
  head.append(el('span', 'sender', m.mine ? `${m.senderName} (you)` : m.senderName));
  const time = el('time', '', clockTime(m.sendTime));
  time.dateTime = m.sendTime;
  head.append(time);
  if (moderation) {
    const actions = el('span', 'actions');
    actions.append(button('Delete', `Delete message from ${m.senderName}`, 'danger', () => moderation.onDelete(m)));
    if (!m.mine) {
      actions.append(
        button('Disconnect', `Disconnect ${m.senderName}`, 'secondary', () => moderation.onDisconnect(m)),
      );
    }
    head.append(actions);
  }
  li.append(head, el('p', 'content', m.content));
  return li;
}

/** Show a message as removed by a moderator, on every page that has it. */
export function markDeleted(li, reason) {
  li.classList.add('deleted');
  li.querySelector('.content').textContent = `Message deleted by a moderator${reason ? `: ${reason}` : ''}.`;
  const actions = li.querySelector('.actions');
  if (actions) actions.remove();
}

/** A line about the room rather than from a person (disconnects, app events). */
export function systemItem(text) {
  return el('li', 'msg system', text);
}

/** @param {Array<{name: string, mine: boolean}>} people in the room, in UserId order */
export function renderPeople(list, people) {
  list.replaceChildren(...people.map((p) => el('li', '', p.mine ? `${p.name} (you)` : p.name)));
  if (!people.length) list.append(el('li', 'hint', 'Nobody is connected.'));
}
