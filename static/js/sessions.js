// Session list: new sessions and status changes of the watched tenants appear without reloading.
// New rows arrive rendered by the server; after a reconnect the server first sends the sessions created
// since the last message seen, and rows are keyed by (tenant, session id), so none shows twice.
import { connectLive } from "./live.js";

const table = document.getElementById("sessions-table");
const body = table.querySelector("tbody");
const liveDot = document.getElementById("live-status");
const tenants = (table.dataset.watchTenants || "").split(",").filter(Boolean);
const statusFilter = table.dataset.status;
let since = table.dataset.since;

function tableRow(html) {
  const template = document.createElement("template");
  template.innerHTML = `<table><tbody>${html.trim()}</tbody></table>`;
  return template.content.querySelector("tr");
}

function rowOf(message) {
  return body.querySelector(`tr[data-tenant="${message.tenant}"][data-session="${CSS.escape(message.session || "")}"]`);
}

function addRow(message) {
  if (!message.html || rowOf(message)) return;
  const row = tableRow(message.html);
  if (statusFilter && row.querySelector(".status")?.textContent !== statusFilter) return;
  body.querySelector("tr.empty")?.remove();
  body.prepend(row);
}

if (table.dataset.live === "1" && tenants.length) {
  connectLive({
    onOpen: (send) => tenants.forEach((tenant) => send({ action: "watch_tenant", tenant, since })),
    onStatus: (status) => { liveDot.dataset.status = liveDot.title = status; },
    onMessage: (message) => {
      if (message.at && message.at > since) since = message.at;
      if (message.type === "watching") liveDot.dataset.status = liveDot.title = "live";
      const existing = rowOf(message);
      if (message.type === "session.updated" && existing) {
        const badge = existing.querySelector(".status");
        badge.textContent = message.status;
        badge.className = `status status-${message.status}`;
      } else if (message.type === "session.created" || message.type === "session.row") {
        addRow(message);
      }
    },
  });
}
