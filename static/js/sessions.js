// Session list: new sessions and status changes of the watched tenants appear without reloading, and the rows of
// a person whose erasure is approved disappear. New rows arrive rendered by the server; after a reconnect the
// server first sends the sessions created since the last message seen, and which of the rows shown were erased
// meanwhile, a batch at a time. Rows are keyed by row id (a session id freed by an erasure may be taken again),
// so none shows twice.
import { connectLive } from "./live.js";

const table = document.getElementById("sessions-table");
const body = table.querySelector("tbody");
const liveDot = document.getElementById("live-status");
const tenants = (table.dataset.watchTenants || "").split(",").filter(Boolean);
const watchAll = table.dataset.watchAll === "1"; // no tenant filter: every tenant, through one watch
const live = table.dataset.live === "1"; // new sessions belong on this page (first page, no search or window)
const statusFilter = table.dataset.status;
// Where a (re)connect's catch-up starts: what was created before it is on the page. It moves on only between
// catch-ups, to the newest message heard: a catch-up cut short by a reconnect starts again from where it did.
let since = table.dataset.since;
let heard = since;
const SHOWN_PER_FRAME = 500; // row ids per watch: the server checks as many at a time (consumers.CATCHUP_LIMIT)

function tableRow(html) {
  const template = document.createElement("template");
  template.innerHTML = `<table><tbody>${html.trim()}</tbody></table>`;
  return template.content.querySelector("tr");
}

function rowOf(message) {
  return body.querySelector(`tr[data-tenant="${message.tenant}"][data-session="${CSS.escape(message.session || "")}"]`);
}

// The list is newest first, by (created, row id) as the server pages it. A new row goes where it sorts (a catch-up
// sends the oldest first, and a session committed late was created before others), but not below the last row
// when older pages follow: it is on one of them.
const olderPages = Boolean(document.querySelector("nav.pager a"));

function createdOf(row) {
  // UTC ISO times sort as text (without microseconds, the time still sorts first: "+" before ".").
  return row.querySelector("time")?.getAttribute("datetime") || "";
}

function sortsAbove(row, other) {
  const created = createdOf(row);
  const otherCreated = createdOf(other);
  return created === otherCreated ? row.dataset.pk > other.dataset.pk : created > otherCreated;
}

function addRow(message) {
  if (!live || !message.html) return;
  const row = tableRow(message.html);
  if (body.querySelector(`tr[data-pk="${CSS.escape(row.dataset.pk)}"]`)) return;
  if (statusFilter && row.querySelector(".status")?.textContent !== statusFilter) return;
  let below = null;
  for (const shown of body.querySelectorAll("tr[data-pk]")) {
    if (sortsAbove(row, shown)) {
      below = shown;
      break;
    }
  }
  if (!below && olderPages) return;
  body.querySelector("tr.empty")?.remove();
  if (below) below.before(row);
  else body.append(row);
}

// The row ids (session uuids) shown, of one tenant or all: the server says which were erased while away.
function shown(tenant) {
  const rows = body.querySelectorAll(tenant ? `tr[data-pk][data-tenant="${tenant}"]` : "tr[data-pk]");
  return Array.from(rows, (row) => row.dataset.pk);
}

function dropErased(message) {
  for (const pk of message.sessions || []) body.querySelector(`tr[data-pk="${CSS.escape(pk)}"]`)?.remove();
  if (!body.querySelector("tr")) {
    body.append(tableRow('<tr class="empty"><td colspan="7">No sessions match.</td></tr>'));
  }
}

// The catch-ups under way, one per watch (by tenant, "" for every tenant): the new sessions still to come
// (`rows`: from `since`, after `after`) and the row ids not yet sent. Each `watching` asks for the next batch.
let send = null;
const catchUps = new Map();

function watch(tenant) {
  const catchUp = catchUps.get(tenant);
  const frame = tenant ? { action: "watch_tenant", tenant } : { action: "watch_sessions" };
  if (catchUp.rows) Object.assign(frame, { since: catchUp.since }, catchUp.after ? { after: catchUp.after } : {});
  send({ ...frame, shown: catchUp.shown.splice(0, SHOWN_PER_FRAME) });
}

function watched(message) {
  const tenant = message.tenant || "";
  const catchUp = catchUps.get(tenant);
  if (!catchUp) return;
  catchUp.rows = catchUp.rows && Boolean(message.more);
  catchUp.after = message.after;
  if (catchUp.rows || catchUp.shown.length) {
    watch(tenant);
    return;
  }
  catchUps.delete(tenant);
  if (catchUps.size) return;
  if (heard > since) since = heard;
  liveDot.dataset.status = liveDot.title = live ? "live" : "connected";
}

// Every list page listens, live or not: an erasure must take its rows off any open page.
if (watchAll || tenants.length) {
  connectLive({
    onOpen: (sender) => {
      send = sender;
      catchUps.clear();
      for (const tenant of watchAll ? [""] : tenants) {
        catchUps.set(tenant, { since, rows: live, after: null, shown: shown(tenant) });
        watch(tenant);
      }
    },
    onStatus: (status) => { liveDot.dataset.status = liveDot.title = status; },
    onMessage: (message) => {
      if (message.at && message.at > heard) heard = message.at;
      if (!catchUps.size && heard > since) since = heard;
      if (message.type === "watching") watched(message);
      const existing = rowOf(message);
      if (message.type === "session.updated" && existing) {
        const badge = existing.querySelector(".status");
        badge.textContent = message.status;
        badge.className = `status status-${message.status}`;
      } else if (message.type === "session.created" || message.type === "session.row") {
        addRow(message);
      } else if (message.type === "session.erased") {
        dropErased(message);
      }
    },
  });
}
