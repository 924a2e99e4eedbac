// The portal's only way to the service: the public GraphQL API, over HTTP and over the
// graphql-transport-ws websocket. The session cookie rides along by itself; the CSRF
// token from the page's <meta> goes with every request (a header over HTTP, the
// connection_init payload on the websocket).

const ENDPOINT = "/graphql";
const PROTOCOL = "graphql-transport-ws";
// Refusals are final: reconnecting cannot help (app/web/graphiql.html lists the same).
const FINAL_CLOSE_CODES = [4400, 4401, 4403, 4406, 4409, 4429, 4500];
// The session (or its key) is gone: only a new link helps.
const SESSION_CLOSE_CODES = [4401, 4403];
const MAX_BACKOFF_MS = 30_000;

/** The value of one of the page's <meta name=...> tags, or "". */
export function pageMeta(name) {
  const element = document.querySelector(`meta[name="${name}"]`);
  return element ? element.getAttribute("content") || "" : "";
}

const csrfToken = pageMeta("webhooks-csrf-token");
const sessionListeners = [];

/** Calls `listener` once when the session turns out to be over (401/403, 4401/4403). */
export function onSessionEnded(listener) {
  sessionListeners.push(listener);
}

let sessionOver = false;

function endSession() {
  if (sessionOver) return;
  sessionOver = true;
  for (const listener of sessionListeners) listener();
}

/** A failed call: `kind` is network, http, session or graphql; `errors` the GraphQL ones. */
export class ApiError extends Error {
  constructor(kind, message, errors = []) {
    super(message);
    this.kind = kind;
    this.errors = errors;
  }
}

/** Runs one query or mutation; resolves to its `data`, or rejects with an ApiError. */
export async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-webhooks-csrf": csrfToken },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError("network", `The service could not be reached (${error.message}).`);
  }
  if (response.status === 401 || response.status === 403) {
    endSession();
    throw new ApiError("session", "Your portal session has ended.");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError("http", `The service answered ${response.status} without a GraphQL result.`);
  }
  const errors = Array.isArray(body.errors) ? body.errors : [];
  if (errors.some((error) => error.extensions && error.extensions.code === "UNAUTHENTICATED")) {
    endSession();
    throw new ApiError("session", "Your portal session has ended.", errors);
  }
  if (errors.length > 0) {
    throw new ApiError("graphql", errors.map((error) => String(error.message)).join(" "), errors);
  }
  if (!response.ok || !body.data) {
    throw new ApiError("http", `The service answered ${response.status}.`);
  }
  return body.data;
}

/**
 * A small graphql-transport-ws client: one socket for every live operation, opened on
 * the first subscribe, re-opened with backoff after a close that is not final (each
 * operation is sent again). `onConnected` runs after each acknowledgement, so that a
 * screen fetches what changed before its subscriptions started.
 */
export class LiveClient {
  constructor({ onState = () => {}, onConnected = () => {} } = {}) {
    this.onState = onState;
    this.onConnected = onConnected;
    this.operations = new Map();
    this.nextId = 1;
    this.socket = null;
    this.acknowledged = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.closedForGood = false;
  }

  /** Starts a subscription; `sink` has next(data), error(message), complete(). Returns stop(). */
  subscribe(query, variables, sink) {
    const id = String(this.nextId++);
    this.operations.set(id, { query, variables, sink });
    if (this.socket === null) this.open();
    else if (this.acknowledged) this.sendSubscribe(id);
    return () => this.stop(id);
  }

  stop(id) {
    if (!this.operations.delete(id)) return;
    if (this.acknowledged) this.send({ id, type: "complete" });
    if (this.operations.size === 0) this.shut();
  }

  /** Closes the socket and stops reconnecting (the session is over, or nothing listens). */
  shut() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    this.acknowledged = false;
    if (socket) socket.close(1000, "done");
  }

  open() {
    if (this.closedForGood) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${ENDPOINT}`, PROTOCOL);
    this.socket = socket;
    this.onState("connecting");
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: { csrfToken } }));
    });
    socket.addEventListener("message", (event) => this.receive(socket, event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const operation = message.id ? this.operations.get(message.id) : undefined;
    switch (message.type) {
      case "connection_ack": {
        this.acknowledged = true;
        this.attempt = 0;
        this.onState("live");
        for (const id of this.operations.keys()) this.sendSubscribe(id);
        // Changes made before the subscriptions started are not replayed, on the first
        // connection (the screen's first fetch ran before it) as after a reconnect.
        this.onConnected();
        break;
      }
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        if (operation) {
          const errors = message.payload && message.payload.errors;
          if (errors && errors.length) operation.sink.error(errors.map((e) => e.message).join(" "));
          else operation.sink.next(message.payload.data);
        }
        break;
      case "error":
        if (operation) {
          this.operations.delete(message.id);
          const errors = Array.isArray(message.payload) ? message.payload : [];
          operation.sink.error(errors.map((e) => e.message).join(" ") || "The live updates failed.");
        }
        break;
      case "complete":
        if (operation) {
          this.operations.delete(message.id);
          operation.sink.complete();
        }
        break;
      default:
        break;
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.acknowledged = false;
    if (SESSION_CLOSE_CODES.includes(event.code)) {
      this.closedForGood = true;
      this.onState("ended");
      endSession();
      return;
    }
    if (FINAL_CLOSE_CODES.includes(event.code)) {
      this.closedForGood = true;
      this.onState("refused", `${event.code}: ${event.reason || "no reason given"}`);
      return;
    }
    if (this.operations.size === 0) return;
    // 1 s, 2 s, 4 s ... up to 30 s, with jitter so many tabs do not reconnect in step.
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.onState("reconnecting", Math.round(delay / 1000));
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  sendSubscribe(id) {
    const { query, variables } = this.operations.get(id);
    this.send({ id, type: "subscribe", payload: { query, variables } });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }
}
