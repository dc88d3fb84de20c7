// User page: memories (added, updated, merged, deleted), the profile and the user's sessions follow the
// service live. Rows arrive rendered by the server and are keyed by id, so a catch-up that overlaps a live
// message replaces a row instead of repeating it. When the person is erased, the page drops all it shows.
import { connectLive, element } from "./live.js";

const anchor = document.getElementById("user-live");
const liveDot = document.getElementById("live-status");
const tenant = anchor.dataset.tenant;
const userId = JSON.parse(document.getElementById("user-id").textContent); // exactly, carriage returns too
// Where a (re)connect's catch-up starts: what changed before it is on the page. It moves on only between
// catch-ups, to the newest message heard: a catch-up cut short by a reconnect starts again from where it did.
let since = anchor.dataset.since;
let heard = since;
let catchingUpFrom = null; // the `since` of the catch-up under way, which every batch of it asks with

function tableRow(html) {
  // A lone <tr> only parses inside a table.
  const template = document.createElement("template");
  template.innerHTML = `<table><tbody>${html.trim()}</tbody></table>`;
  return template.content.querySelector("tr");
}

function sectionBody(scope) {
  return document.querySelector(`#memories-${scope} tbody`);
}

function countOf(scope) {
  return document.querySelector(`#memories-${scope} .count`);
}

// A section lists the newest memories first (rows sort by `data-order`, as text) and may stop before the
// oldest: its count says how many there are. A row it does not have goes where it sorts, but not below the
// last row of a section that stops there: that is an older memory edited, or one counted but not shown when
// the page was built.
function place(body, scope, fresh) {
  const shown = [...body.querySelectorAll("tr[data-memory]")];
  const below = shown.find((row) => row.dataset.order < fresh.dataset.order);
  if (below) {
    below.before(fresh);
  } else if (shown.length >= Number(countOf(scope)?.textContent)) {
    body.querySelector("tr.empty")?.remove();
    body.append(fresh);
  }
}

function applyMemory(row) {
  const selector = `tr[data-memory="${row.memory}"]`;
  const body = sectionBody(row.scope);
  const existing = body?.querySelector(selector);
  // Search results are a snapshot of one query: mark what changed there, do not reorder them.
  for (const hit of document.querySelectorAll(`#search-results ${selector}`)) hit.classList.add("stale");
  if (row.deleted) {
    if (existing) {
      existing.remove();
      if (!body.querySelector("tr")) body.append(tableRow('<tr class="empty"><td colspan="7">None.</td></tr>'));
    }
    return;
  }
  const fresh = tableRow(row.html);
  fresh.classList.add("fresh");
  if (existing) {
    existing.replaceWith(fresh);
  } else if (body) {
    place(body, row.scope, fresh);
  }
}

function applySession(message) {
  const body = document.querySelector("#user-sessions tbody");
  const fresh = tableRow(message.html);
  fresh.classList.add("fresh");
  const existing = body.querySelector(`tr[data-session="${message.session}"]`);
  if (existing) {
    existing.replaceWith(fresh);
  } else {
    body.querySelector("tr.empty")?.remove();
    body.prepend(fresh);
  }
}

function showErased() {
  // Nothing of the person stays: not their rows, not their id in the heading or the title.
  document.title = "Erased · Agent memory";
  document.querySelector("main").replaceChildren(element("section", { class: "card narrow", id: "erased" },
    element("h1", {}, "Erased"),
    element("p", {}, "This person was erased; nothing about them can be shown any more.")));
}

let send = null;
let erased = false;
const live = connectLive({
  onOpen: (sender) => {
    send = sender;
    catchingUpFrom = since;
    send({ action: "watch_user", tenant, user_id: userId, since });
  },
  onStatus: (status) => { liveDot.dataset.status = liveDot.title = status; },
  onMessage: (message) => {
    if (erased) return; // nothing may bring a row of theirs back
    if (message.at && message.at > heard) heard = message.at;
    if (message.type === "watching") {
      if (message.more) {
        // The next batch of the same catch-up, from where this one stopped.
        send({ action: "watch_user", tenant, user_id: userId, since: catchingUpFrom, after: message.after });
      } else {
        catchingUpFrom = null;
        if (heard > since) since = heard;
        liveDot.dataset.status = liveDot.title = "live";
      }
    } else if (catchingUpFrom === null && heard > since) {
      since = heard;
    }
    if (message.type === "user.erased") {
      erased = true;
      showErased();
      live.close();
    } else if (message.type === "memory.rows") {
      message.rows.forEach(applyMemory);
      // The sections' totals as the server counted them with these rows: an edit or a row the page does not
      // show changes them only as much as it really does.
      for (const [scope, total] of Object.entries(message.totals || {})) {
        const count = countOf(scope);
        if (count) count.textContent = String(total);
      }
    } else if (message.type === "profile.html") {
      const body = document.getElementById("profile-body");
      body.innerHTML = message.html;
      body.classList.add("fresh");
    } else if (message.type === "user.session") {
      applySession(message);
    }
  },
});
