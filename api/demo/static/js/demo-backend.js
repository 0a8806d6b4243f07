// The demo's stand-in for an application backend: POST /demo/token mints a single-use chat token
// (creating the room on first use), as a real backend would with CreateRoom and CreateChatToken.

export class TokenRequestError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/**
 * @param {{room: string, displayName: string, moderator: boolean, userId?: string}} request
 * @returns {Promise<{token: string, userId: string, displayName: string, capabilities: string[], roomArn: string,
 *   roomId: string, roomName: string, maximumMessageLength: number, gatewayUrl: string}>}
 */
export async function fetchToken(request) {
  let response;
  try {
    response = await fetch('/demo/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
      cache: 'no-store',
    });
  } catch {
    throw new TokenRequestError(0, 'NetworkError', 'the server cannot be reached');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: described below from the status alone
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new TokenRequestError(response.status, error.code || 'HttpError', error.message || `HTTP ${response.status}`,
      error.field);
  }
  return body;
}
