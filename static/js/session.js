// Session page: the event timeline appends live; time travel shows the state at any version.
import { connectLive, element } from "./live.js";

const timeline = document.getElementById("timeline");
const sessionPk = timeline.dataset.session;
const headVersion = document.getElementById("head-version");
const statusBadge = document.getElementById("session-status");
const liveDot = document.getElementById("live-status");

function lastShownVersion() {
  const rows = timeline.querySelectorAll("li[data-version]");
  return rows.length ? Number(rows[rows.length - 1].dataset.version) : 0;
}

function appendRow(row) {
  if (row.version <= lastShownVersion()) return; // already shown (catch-up overlapping live updates)
  timeline.querySelector("li.empty")?.remove();
  const summary = element("summary", {},
    element("span", { class: "v" }, `v${row.version}`), " ",
    element("span", { class: "type" }, row.type), " ",
    element("span", { class: "summary" }, row.summary));
  const payload = element("pre", { class: "json" }, row.payload);
  const item = element("li", { "data-version": String(row.version), class: "fresh" }, element("details", {}, summary, payload));
  timeline.append(item);
  headVersion.textContent = String(Math.max(Number(headVersion.textContent), row.version));
  document.getElementById("travel-version").max = headVersion.textContent;
}

connectLive({
  onOpen: (send) => send({ action: "watch_session", session: sessionPk, after_version: lastShownVersion() }),
  onStatus: (status) => { liveDot.dataset.status = status; liveDot.title = status; },
  onMessage: (message) => {
    if (message.type === "catchup" || message.type === "event.appended") {
      for (const row of message.events || []) appendRow(row);
    } else if (message.type === "session.updated") {
      statusBadge.textContent = message.status;
      statusBadge.className = `status status-${message.status}`;
    }
  },
});

const travel = document.getElementById("time-travel");
travel.addEventListener("submit", async (event) => {
  event.preventDefault();
  const version = document.getElementById("travel-version").value;
  const response = await fetch(`${travel.dataset.stateUrl}?version=${encodeURIComponent(version)}`, {
    headers: { Accept: "application/json" },
  });
  const info = document.getElementById("travel-info");
  const state = document.getElementById("travel-state");
  if (!response.ok) {
    info.textContent = `No state at version ${version}.`;
    state.textContent = "";
    return;
  }
  const body = await response.json();
  info.textContent = `State after version ${body.version} (from snapshot ${body.snapshot_version}, ${body.replayed_events} events replayed)`;
  state.textContent = JSON.stringify(body.state, null, 2);
});
