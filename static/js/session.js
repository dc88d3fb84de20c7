// Session page: the event timeline appends live; time travel shows the state at any version.
import { connectLive, element } from "./live.js";

const timeline = document.getElementById("timeline");
const sessionPk = timeline.dataset.session;
const headVersion = document.getElementById("head-version");
const statusBadge = document.getElementById("session-status");
const liveDot = document.getElementById("live-status");

// The last version the page shows; with no rows (none yet, or all in the archive), the head it was built at.
function lastShownVersion() {
  const rows = timeline.querySelectorAll("li[data-version]");
  return rows.length ? Number(rows[rows.length - 1].dataset.version) : Number(timeline.dataset.head);
}

const paged = timeline.dataset.paged === "1"; // an older page: new events are counted, not appended
const journal = document.querySelector("#journal tbody");

function tableRow(html) {
  const template = document.createElement("template");
  template.innerHTML = `<table><tbody>${html.trim()}</tbody></table>`;
  return template.content.querySelector("tr");
}

function applyOperation(message) {
  const fresh = tableRow(message.html);
  fresh.classList.add("fresh");
  const existing = journal.querySelector(`tr[data-operation="${message.operation}"]`);
  if (existing) {
    existing.replaceWith(fresh);
  } else {
    journal.querySelector("tr.empty")?.remove();
    journal.prepend(fresh);
  }
  document.getElementById("pending-count").textContent = String(message.pending);
}

// Shows a row after the last one. A live row must come right after it: versions have no gaps, so a row past
// it means some never arrived, and it is refused (false) until a catch-up has filled the hole. A catch-up's
// rows are what the server holds after that version, so they are taken as they come (events moved to the
// archive in between leave a gap no one can fill).
function appendRow(row, { live }) {
  if (paged) {
    headVersion.textContent = String(Math.max(Number(headVersion.textContent), row.version));
    return true;
  }
  const last = lastShownVersion();
  if (row.version <= last) return true; // already shown (catch-up overlapping live updates)
  if (live && row.version !== last + 1) return false;
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
  return true;
}

let send = null;
let catchingUp = false;
let stalled = false; // the last catch-up brought nothing new
let newestHeard = 0; // the highest version a live message announced

function catchUp() {
  catchingUp = true;
  send({
    action: "watch_session",
    session: sessionPk,
    after_version: paged ? Number(headVersion.textContent) : lastShownVersion(),
  });
}

const live = connectLive({
  onOpen: (sender) => {
    send = sender;
    catchUp();
  },
  onStatus: (status) => { liveDot.dataset.status = liveDot.title = status; },
  onMessage: (message) => {
    if (message.type === "catchup") {
      const rows = message.events || [];
      for (const row of rows) appendRow(row, { live: false });
      if (message.more) {
        catchUp(); // the next batch, from the last row of this one
      } else if (!paged && newestHeard > lastShownVersion() && !stalled) {
        // Live rows announced meanwhile were refused (committed after this catch-up was read): once more,
        // but not on and on when the server has nothing to add.
        stalled = rows.length === 0;
        catchUp();
      } else {
        stalled = catchingUp = false;
        liveDot.dataset.status = liveDot.title = "live";
      }
    } else if (message.type === "event.appended") {
      newestHeard = Math.max(newestHeard, message.version || 0);
      const shown = (message.events || []).every((row) => appendRow(row, { live: true }));
      if (!paged && !catchingUp && (!shown || newestHeard > lastShownVersion())) catchUp();
    } else if (message.type === "operation.row") {
      applyOperation(message);
    } else if (message.type === "session.erased") {
      // The person was erased (live, or while the page was away): drop everything the page shows about them,
      // the session id in the title included.
      document.title = "Erased · Agent memory";
      document.querySelector("main").replaceChildren(element("section", { class: "card narrow", id: "erased" },
        element("h1", {}, "Erased"),
        element("p", {}, "The person this session served was erased; nothing of it can be shown any more.")));
      live.close();
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
