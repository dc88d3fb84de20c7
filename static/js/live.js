// The dashboard's live connection: one WebSocket per page, reconnecting with backoff.
// `onOpen` runs after every (re)connect, so a page re-sends its watches with the last version it shows
// and the server catches it up: nothing missed, and rows are keyed by version so nothing shows twice.

export function connectLive({ onOpen, onMessage, onStatus }) {
  // WEBSOCKET_URL may leave the host to the browser as {hostname} (`make run` on every interface): the socket
  // is then on whatever name or address this page was reached by (location.hostname brackets an IPv6 one).
  const base = document.body.dataset.websocketUrl?.replaceAll("{hostname}", location.hostname) ||
    `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
  let delay = 500;
  let socket;
  let stopped = false;

  function open() {
    socket = new WebSocket(`${base}/ws/live/`);
    socket.addEventListener("open", () => {
      delay = 500;
      // "live" comes from the page once the server confirms its watch (catch-up sent, subscribed).
      onStatus?.("connected");
      onOpen((message) => socket.send(JSON.stringify(message)));
    });
    socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      onStatus?.("offline");
      if (stopped || event.code === 4403) return; // closed by the page, or no longer allowed: stay closed
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    });
  }
  open();
  return { close: () => { stopped = true; socket?.close(); } };
}

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}
