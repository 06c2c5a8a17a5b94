// The live feed: one WebSocket per own extension, opened with a single-use ticket
// (never a token in the URL), reopened with backoff while the session lasts.

import { api } from "./api.js";

const sockets = new Map();
let running = false;
let onMessage = () => {};

function setBadge() {
  const badge = document.getElementById("live");
  const states = [...sockets.values()].map((entry) => entry.open);
  const open = states.filter(Boolean).length;
  badge.textContent = states.length ? `live ${open}/${states.length}` : "offline";
  const ready = open > 0 && open === states.length;
  badge.className = `badge ${ready ? "ok" : "degraded"}`;
  // Tests and screen readers can tell when every feed is up.
  document.body.dataset.live = ready ? "ready" : "connecting";
}

async function connect(extension, entry) {
  if (!running) return;
  try {
    const { ticket } = await api("POST", "/api/ws-tickets");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/ws/agents/${encodeURIComponent(extension)}?ticket=${encodeURIComponent(ticket)}`;
    const socket = new WebSocket(url);
    entry.socket = socket;
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "hello") {
        entry.open = true;
        entry.delay = 1000;
        setBadge();
        return;
      }
      onMessage(message, extension);
    });
    socket.addEventListener("close", () => {
      entry.open = false;
      setBadge();
      retry(extension, entry);
    });
  } catch {
    retry(extension, entry);
  }
}

function retry(extension, entry) {
  if (!running || sockets.get(extension) !== entry) return;
  entry.delay = Math.min((entry.delay || 1000) * 2, 15000);
  entry.timer = setTimeout(() => connect(extension, entry), entry.delay);
}

/** Open a socket for each extension; `handler(message, extension)` gets every event. */
export function startLive(extensions, handler) {
  stopLive();
  running = true;
  onMessage = handler;
  for (const extension of extensions) {
    const entry = { open: false, delay: 1000, socket: null, timer: null };
    sockets.set(extension, entry);
    connect(extension, entry);
  }
  setBadge();
}

/** Close every socket (sign-out). */
export function stopLive() {
  running = false;
  for (const entry of sockets.values()) {
    clearTimeout(entry.timer);
    entry.socket?.close();
  }
  sockets.clear();
  delete document.body.dataset.live;
  setBadge();
}
