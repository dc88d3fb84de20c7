// API keys page (admins): keys created or revoked elsewhere (another admin, another tab) appear live.
// Rows arrive rendered by the server and keyed by key id, so a catch-up overlapping a live message is harmless.
import { connectLive } from "./live.js";

const table = document.getElementById("keys-table");
const body = table.querySelector("tbody");
const liveDot = document.getElementById("live-status");
const tenants = (table.dataset.watchTenants || "").split(",").filter(Boolean);
const watchAll = table.dataset.watchAll === "1"; // no tenant filter: every tenant, through one watch
let since = table.dataset.since;

function tableRow(html) {
  const template = document.createElement("template");
  template.innerHTML = `<table><tbody>${html.trim()}</tbody></table>`;
  return template.content.querySelector("tr");
}

if (table.dataset.live === "1" && (watchAll || tenants.length)) {
  connectLive({
    onOpen: (send) => send(watchAll ? { action: "watch_all_keys", since } : { action: "watch_keys", tenants, since }),
    onStatus: (status) => { liveDot.dataset.status = liveDot.title = status; },
    onMessage: (message) => {
      if (message.at && message.at > since) since = message.at;
      if (message.type === "watching") liveDot.dataset.status = liveDot.title = "live";
      if (message.type !== "api_key.row") return;
      const fresh = tableRow(message.html);
      fresh.classList.add("fresh");
      const existing = body.querySelector(`tr[data-key="${message.key}"]`);
      if (existing) {
        existing.replaceWith(fresh);
      } else {
        body.querySelector("tr.empty")?.remove();
        body.prepend(fresh);
      }
    },
  });
}
