// ERROR frames (spec §4) in words a chat user understands. ErrorMessage text comes from the server
// and may carry user content (a review reason); callers must put the result in textContent only.

function codePoints(text) {
  return [...text].length; // the room limit counts Unicode code points, as the server does
}

function attempted(request) {
  switch (request && request.Action) {
    case 'DELETE_MESSAGE': return 'delete that message';
    case 'DISCONNECT_USER': return 'disconnect that user';
    case 'SEND_MESSAGE': return 'send that message';
    default: return 'do that';
  }
}

/**
 * @param {{ErrorCode: number, ErrorMessage?: string}} frame an ERROR frame (never 401: that one reconnects)
 * @param {object|undefined} request what we sent with that RequestId, if we know
 * @param {number} maxLength the room's maximumMessageLength
 */
export function describeError(frame, request, maxLength) {
  const detail = typeof frame.ErrorMessage === 'string' ? frame.ErrorMessage : '';
  switch (frame.ErrorCode) {
    case 400:
      if (request && request.Action === 'SEND_MESSAGE' && codePoints(request.Content) > maxLength) {
        return `Message too long: it has ${codePoints(request.Content)} characters and this room allows at most ` +
          `${maxLength}. It was not sent.`;
      }
      return `Could not ${attempted(request)}: the server rejected the request${detail ? ` (${detail})` : ''}.`;
    case 403:
      return `Not allowed: your chat token does not permit you to ${attempted(request)}.`;
    case 404:
      return 'This room no longer exists.';
    case 406:
      return `Rejected by message review: ${detail || 'no reason given'}.`;
    case 413:
      return `Could not ${attempted(request)}: part of it is too large.`;
    case 429:
      return 'Slow down: you are sending too fast. Wait a moment, then try again.';
    case 500:
      return `Something went wrong on the server; could not ${attempted(request)}. Try again.`;
    default:
      return `Error ${frame.ErrorCode}${detail ? `: ${detail}` : ''}.`;
  }
}
